"""A job's plots, drawn in the API process from what the database holds: history, diagnostics,
and the held-out predictions the worker stored with the model."""

from typing import Any, Literal

from matplotlib.figure import Figure
from sqlalchemy import select
from sqlalchemy.orm import Session

from service import diagnostics, jobs
from service.core.errors import Conflict, InvalidInput, NotFound
from service.core.orm import EpochMetric, Job, JobStatus
from service.formats import figures
from service.keys import Principal

PlotKind = Literal["learning-curves", "confusion-matrix", "gradient-norms", "predicted-vs-actual"]
PlotFormat = Literal["png", "svg"]
SCALED = ("learning-curves", "gradient-norms")  # the kinds that take a scale


def render(
    session: Session,
    principal: Principal,
    job_id: str,
    kind: PlotKind,
    fmt: PlotFormat,
    scale: figures.Scale | None = None,
) -> bytes:
    """The plot as PNG or SVG bytes; 404 where it does not apply, 409 where its data is not
    there yet, 422 for a scale on a plot that has none."""
    job = jobs.get(session, principal, job_id)
    if scale is not None and kind not in SCALED:
        raise InvalidInput(
            f"scale applies to the {' and '.join(SCALED)} plots, not to {kind}; leave it out",
            field="scale",
        )
    if kind == "learning-curves":
        figure = _learning_curves(session, job, scale or "linear")
    elif kind == "gradient-norms":
        figure = _gradient_norms(session, job, scale or "log")
    else:
        figure = _EVALUATIONS[kind](job)
    return figures.render(figure, fmt)


def _learning_curves(session: Session, job: Job, scale: figures.Scale) -> Figure:
    rows = session.scalars(
        select(EpochMetric).where(EpochMetric.job_id == job.id).order_by(EpochMetric.epoch)
    ).all()
    if not rows:
        raise Conflict(
            f"job '{job.id}' has no finished epoch yet (it is {job.status}); the learning curves "
            "appear after its first epoch",
            field="job_id",
        )
    return figures.learning_curves([r.epoch for r in rows], [r.metrics for r in rows], scale)


def _gradient_norms(session: Session, job: Job, scale: figures.Scale) -> Figure:
    if not diagnostics.enabled(job.request):
        raise NotFound(
            f"job '{job.id}' was submitted with training.diagnostics false, so it has no "
            "gradient norms",
            field="kind",
        )
    rows = diagnostics.rows(session, job.id)
    if not rows:
        raise Conflict(
            f"job '{job.id}' has no diagnostics yet (it is {job.status}); they appear after its "
            "first epoch",
            field="job_id",
        )
    names = [layer["name"] for layer in rows[-1].layers]
    names = [n for n in names if any(_norm(r.layers, n) is not None for r in rows)]  # kernels
    norms = {name: [_norm(row.layers, name) for row in rows] for name in names}
    flagged = {row.epoch: [f["kind"] for f in row.flags] for row in rows if row.flags}
    return figures.gradient_norms([row.epoch for row in rows], norms, flagged, scale)


def _norm(layers: list[dict[str, Any]], name: str) -> float | None:
    for layer in layers:
        if layer["name"] == name:
            norm: float | None = layer["gradient_norm"]
            return norm
    return None


def _evaluation(job: Job, task: str, kind: str, instead: str) -> dict[str, Any]:
    if job.task != task:
        raise NotFound(
            f"the {kind} plot is for {task} jobs; job '{job.id}' is a {job.task}: see {instead}",
            field="kind",
        )
    if job.status != JobStatus.succeeded or job.model is None:
        raise Conflict(
            f"job '{job.id}' is {job.status}; the {kind} plot comes from the trained model's "
            "predictions on the held-out rows, made when the job succeeds",
            field="job_id",
        )
    evaluation = job.model.evaluation
    if not evaluation:
        raise NotFound(
            f"job '{job.id}' held out no rows to predict (validation_split and test_split are "
            f"0), so there is no {kind} plot",
            field="kind",
        )
    return evaluation


def _confusion_matrix(job: Job) -> Figure:
    evaluation = _evaluation(job, "classification", "confusion-matrix", "predicted-vs-actual")
    matrix = evaluation["confusion_matrix"]
    return figures.confusion_matrix(matrix["labels"], matrix["counts"], evaluation["split"])


def _predicted_vs_actual(job: Job) -> Figure:
    evaluation = _evaluation(job, "regression", "predicted-vs-actual", "confusion-matrix")
    return figures.predicted_vs_actual(evaluation["predicted_vs_actual"], evaluation["split"])


_EVALUATIONS = {
    "confusion-matrix": _confusion_matrix,
    "predicted-vs-actual": _predicted_vs_actual,
}
