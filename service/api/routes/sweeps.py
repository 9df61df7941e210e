"""Sweeps: a grid or random search over a job request's fields, run as jobs and ranked."""

from typing import Annotated

from fastapi import Body, Response, status

from service.api.deps import CurrentPrincipal, Limit, Offset, SessionDep, v1_router
from service.experiments import sweeps
from service.schemas import examples
from service.schemas.common import ErrorBody, Page
from service.schemas.sweeps import SweepCreate, SweepRead

router = v1_router("/v1/sweeps", "sweeps")

SWEEP_EXAMPLES = {
    "concrete": {
        "summary": "Concrete: units x learning rate, ranked by val_loss",
        "value": examples.CONCRETE_SWEEP,
    },
    "random": {
        "summary": "Concrete: random learning rates and batch sizes",
        "value": {
            **examples.CONCRETE_SWEEP,
            "search": "random",
            "parameters": {
                "training.optimizer.learning_rate": {"min": 0.0001, "max": 0.1, "log": True},
                "training.batch_size": [16, 32, 64],
            },
            "max_trials": 6,
            "seed": 7,
        },
    },
}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SweepRead,
    responses={429: {"model": ErrorBody, "description": "Too many active jobs; see Retry-After."}},
)
def create_sweep(
    session: SessionDep,
    principal: CurrentPrincipal,
    response: Response,
    request: Annotated[SweepCreate, Body(openapi_examples=SWEEP_EXAMPLES)],
) -> SweepRead:
    """Start a sweep: each trial is checked, then queued as a job; poll `Location` for ranks."""
    sweep = sweeps.create(session, principal, request)
    response.headers["Location"] = f"/v1/sweeps/{sweep.id}"
    return sweeps.to_read(sweep)


@router.get("", response_model=Page[SweepRead])
def list_sweeps(
    session: SessionDep, principal: CurrentPrincipal, limit: Limit = 50, offset: Offset = 0
) -> Page[SweepRead]:
    """List your sweeps, newest first."""
    items, total = sweeps.page(session, principal, limit, offset)
    return Page(items=[sweeps.to_read(s) for s in items], total=total, limit=limit, offset=offset)


@router.get("/{sweep_id}", response_model=SweepRead)
def get_sweep(session: SessionDep, principal: CurrentPrincipal, sweep_id: str) -> SweepRead:
    """One sweep: status, its trials ranked by the metric (best first) and the best model's id."""
    return sweeps.to_read(sweeps.get(session, principal, sweep_id))


@router.post("/{sweep_id}/cancel", response_model=SweepRead)
def cancel_sweep(session: SessionDep, principal: CurrentPrincipal, sweep_id: str) -> SweepRead:
    """Cancel a sweep: its queued trials never run, its running ones stop at the next batch."""
    return sweeps.to_read(sweeps.cancel(session, principal, sweep_id))
