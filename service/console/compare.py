"""Comparing 2 to 20 jobs: their learning curves overlaid, the request fields that differ, and
each job's best epoch and final metrics."""

from typing import Annotated, Any

from fastapi import Query, Request, Response

from service import jobs
from service.api.deps import SessionDep
from service.console.jobs import metric_names
from service.console.pages import Console, console_router, render
from service.core import errors

router = console_router()

MAX_JOBS = 20
# Accuracy-like metrics are best when high; losses and errors when low.
HIGHER_IS_BETTER = ("accuracy", "auc", "precision", "recall", "r2")


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A request as dotted paths to its leaves: `training.optimizer.learning_rate` -> 0.001."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
        flat = {}
        for index, item in enumerate(value):
            flat.update(flatten(item, f"{prefix}[{index}]"))
        flat.setdefault(f"{prefix}.length", len(value))
        return flat
    return {prefix: value}


def best_epoch(history: list[dict[str, Any]], metric: str) -> tuple[int, float] | None:
    """The epoch where `metric` was best, and its value."""
    points = [(row["epoch"], row["metrics"][metric]) for row in history if metric in row["metrics"]]
    if not points:
        return None
    higher = any(word in metric for word in HIGHER_IS_BETTER)
    return max(points, key=lambda p: p[1]) if higher else min(points, key=lambda p: p[1])


@router.get("/compare")
def compare_jobs(
    request: Request,
    session: SessionDep,
    console: Console,
    ids: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies it
    metric: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    """Pick jobs to compare, or compare the chosen ones."""
    ids = list(dict.fromkeys(ids))
    if len(ids) > MAX_JOBS:
        raise errors.InvalidInput(
            f"{len(ids)} jobs were chosen; compare at most {MAX_JOBS} at once", field="ids"
        )
    if len(ids) < 2:
        items, _ = jobs.page(session, console.principal, None, 200, 0)
        return render(
            request,
            "compare_pick.html",
            console,
            jobs=[jobs.to_read(j) for j in items],
            chosen=ids,
        )
    reads = [jobs.to_read(jobs.get(session, console.principal, job_id)) for job_id in ids]
    histories = {
        job.id: [
            row.model_dump()
            for row in jobs.history(session, console.principal, job.id, None, 0, None, 1000).epochs
        ]
        for job in reads
    }
    metrics = metric_names(reads) or ["loss"]
    if metric not in metrics:
        metric = "val_loss" if "val_loss" in metrics else metrics[0]
    flat = {job.id: flatten({k: v for k, v in job.request.items()}) for job in reads}
    paths = sorted({path for values in flat.values() for path in values})
    parameters = [
        {
            "path": path,
            "values": [flat[job.id].get(path) for job in reads],
            "differs": len({repr(flat[job.id].get(path)) for job in reads}) > 1,
        }
        for path in paths
    ]
    parameters.sort(key=lambda p: (not p["differs"], p["path"]))
    best = {job.id: best_epoch(histories[job.id], metric) for job in reads}
    series = [
        {
            "name": f"{job.id[:8]} {metric}",
            "points": [
                [row["epoch"], row["metrics"][metric]]
                for row in histories[job.id]
                if metric in row["metrics"]
            ],
        }
        for job in reads
    ]
    return render(
        request,
        "compare.html",
        console,
        jobs=reads,
        metric=metric,
        metrics=metrics,
        parameters=parameters,
        best=best,
        final_metrics=metrics,
        chart={"series": series, "y_label": metric, "x_label": "epoch"},
    )
