"""Sweeps in the console: the list, and one sweep's ranked trials with a parallel-coordinates
chart of its parameters against a metric."""

from fastapi import Request, Response

from service.api.deps import SessionDep
from service.console.pages import Console, console_router, render
from service.experiments import sweeps

router = console_router()


@router.get("/sweeps")
def list_sweeps(request: Request, session: SessionDep, console: Console) -> Response:
    """Your sweeps, newest first."""
    items, total = sweeps.page(session, console.principal, 200, 0)
    return render(
        request, "sweeps.html", console, sweeps=[sweeps.to_read(s) for s in items], total=total
    )


@router.get("/sweeps/{sweep_id}")
def show_sweep(request: Request, session: SessionDep, console: Console, sweep_id: str) -> Response:
    """One sweep: its trials, best first, and how each parameter relates to the metric."""
    sweep = sweeps.to_read(sweeps.get(session, console.principal, sweep_id))
    parameters = sorted({name for trial in sweep.trials for name in trial.parameters})
    values: dict[int, dict[str, float | None]] = {
        trial.trial: {
            **(trial.latest_metrics or {}),
            **{f"test_{k}": v for k, v in (trial.test_metrics or {}).items()},
            sweep.metric: trial.value,
        }
        for trial in sweep.trials
    }
    trials = [
        {
            "trial": trial.trial,
            "rank": trial.rank,
            "parameters": trial.parameters,
            "metrics": values[trial.trial],
        }
        for trial in sweep.trials
    ]
    metrics = sorted({n for row in values.values() for n, v in row.items() if v is not None})
    return render(
        request,
        "sweep.html",
        console,
        sweep=sweep,
        parameters=parameters,
        chart={
            "parameters": parameters,
            "trials": trials,
            "metric": sweep.metric,
            "metrics": metrics or [sweep.metric],
            "direction": sweep.direction,
        },
    )
