"""Batch predictions: score a whole dataset with a model into a file in the store.

A batch prediction is a job (`JobKind.batch_prediction`) with a `batch_prediction` row beside it:
it waits in the training queue with the owner's other jobs (their share and their active-job
limit), a worker claims it through the same lease (`service.leases`), and cancel, the event
stream, recovery after a lost worker and the webhook work as for a training job. The worker's
side (reading in chunks, scoring, writing the files): `workers.scoring`.

Its progress is counted in chunks on the job (`epoch` of `epochs`, what the lease and the event
stream's cursor move on) and in rows on its own row (`rows_done` of `rows_total`).
"""

import math
from typing import IO, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service import datasets, jobs, models
from service.core import queue, storage
from service.core.config import get_settings
from service.core.errors import (
    Conflict,
    DendriteError,
    InvalidInput,
    NotFound,
    QuotaExceeded,
)
from service.core.orm import (
    ACTIVE_STATUSES,
    BatchPrediction,
    Dataset,
    Job,
    JobKind,
    JobStatus,
    Model,
    WebhookDelivery,
    utcnow,
)
from service.keys import Principal
from service.schemas.scoring import (
    BatchLinks,
    BatchPredictionCreate,
    BatchPredictionRead,
    BatchProgress,
)

# Column names the result file gives its own columns; a passthrough column may not take them.
ROW_COLUMN, PREDICTION_COLUMN, PROBABILITY_PREFIX = "row", "prediction", "probability_"
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
    "jsonl": "application/jsonl",
}


def output_columns(model: Model) -> list[str]:
    """The columns the model's predictions take in a result row, after `row` and the passthrough
    columns: `prediction` (a class label, or the one target's value), `prediction_<target>` for
    several targets, and `probability_<label>` per class."""
    labels = model.outputs.get("labels")
    if labels is not None:
        return [PREDICTION_COLUMN, *(f"{PROBABILITY_PREFIX}{label}" for label in labels)]
    targets = model.outputs["targets"]
    if len(targets) == 1:
        return [PREDICTION_COLUMN]
    return [f"{PREDICTION_COLUMN}_{target}" for target in targets]


def submit(session: Session, principal: Principal, request: BatchPredictionCreate) -> Job:
    """Check the request against its model and dataset, record the job, queue it after commit."""
    jobs.check_active_limit(session, principal.owner)
    try:
        model = models.get(session, principal, request.model)
    except DendriteError as error:  # named as this request names it
        error.field = "model"
        raise
    dataset = datasets.get(session, principal, request.dataset_id)
    _check_room(session, principal)
    array = _check(model, dataset, request)
    rows = _rows(dataset, array)
    epochs = max(1, math.ceil(rows / request.chunk_rows))
    body = request.model_dump(mode="json") | {"model_id": model.id, "dataset_id": dataset.id}
    job = Job(
        owner=principal.owner,
        kind=JobKind.batch_prediction,
        dataset_id=dataset.id,
        task=model.task,
        request=body,
        device="auto",
        epochs=epochs,
    )
    session.add(job)
    session.flush()
    session.add(
        BatchPrediction(
            job_id=job.id,
            model_id=model.id,
            model_ref=request.model,
            output_format=request.output_format,
            passthrough=list(request.passthrough_columns),
            array=array,
            chunk_rows=request.chunk_rows,
            rows_total=rows,
            rows_done=0,
            rows_failed=0,
            result_bytes=0,
            errors_bytes=0,
        )
    )
    if request.callback_url is not None:
        session.add(WebhookDelivery(job_id=job.id, owner=job.owner, url=request.callback_url))
    queue.enqueue_training(session, job.id, job.device)
    return job


def _check_room(session: Session, principal: Principal) -> None:
    """413 when the owner's storage quota has no room left for a result file (the worker fails
    the job if its files outgrow the room there was when it started)."""
    quota = get_settings().max_storage_bytes_per_owner
    if not quota:
        return
    used = datasets.storage_used(session, principal.owner)
    if used >= quota:
        raise QuotaExceeded(
            f"your datasets, models and batch-prediction files use {storage.human(used)} of your "
            f"{storage.human(quota)} storage quota (DENDRITE_MAX_STORAGE_BYTES_PER_OWNER): there "
            "is no room for a result file. Delete datasets or batch predictions you no longer "
            "need (DELETE /v1/batch-predictions/{id}), then submit it again",
            field="dataset_id",
        )


def _check(model: Model, dataset: Dataset, request: BatchPredictionCreate) -> str | None:
    """422 naming the field when the dataset cannot be scored by the model; the NPZ array to
    score (None for a table)."""
    tabular = model.input_schema["kind"] != "array"
    if tabular and dataset.format == "npz":
        raise InvalidInput(
            f"model '{model.id}' takes table rows, but dataset '{dataset.id}' holds NPZ arrays",
            field="dataset_id",
        )
    if not tabular and dataset.format != "npz":
        raise InvalidInput(
            f"model '{model.id}' takes arrays of shape {model.input_schema['shape']}, but "
            f"dataset '{dataset.id}' is a table; score an NPZ dataset with it",
            field="dataset_id",
        )
    if not tabular:
        return _check_array(model, dataset, request)
    if request.array is not None:
        raise InvalidInput("`array` is for NPZ datasets only; leave it out", field="array")
    dtypes = {column["name"]: column["dtype"] for column in dataset.columns}
    names = list(dtypes)
    missing = [f["name"] for f in model.input_schema["features"] if f["name"] not in names]
    if missing:
        raise InvalidInput(
            f"dataset '{dataset.id}' lacks the column(s) the model takes: "
            f"{', '.join(repr(name) for name in missing)}",
            field="dataset_id",
        )
    for feature in model.input_schema["features"]:
        if feature["kind"] == "numeric" and dtypes[feature["name"]] == "string":
            raise InvalidInput(
                f"column '{feature['name']}' of dataset '{dataset.id}' holds text; the model "
                "takes numbers there",
                field=feature["name"],
            )
    taken = {ROW_COLUMN, *output_columns(model)}
    seen: set[str] = set()
    for index, name in enumerate(request.passthrough_columns):
        pointer = f"passthrough_columns/{index}"
        if name not in names:
            raise InvalidInput(f"dataset '{dataset.id}' has no column '{name}'", field=pointer)
        if name in seen:
            raise InvalidInput(f"column '{name}' is listed twice", field=pointer)
        if name in taken:
            raise InvalidInput(
                f"column '{name}' has the name of a result column ({', '.join(sorted(taken))}); "
                "rename it in the dataset to pass it through",
                field=pointer,
            )
        seen.add(name)
    return None


def _check_array(model: Model, dataset: Dataset, request: BatchPredictionCreate) -> str:
    if request.passthrough_columns:
        raise InvalidInput(
            "an NPZ dataset has no columns to pass through; leave passthrough_columns empty",
            field="passthrough_columns",
        )
    arrays = {column["name"]: column for column in dataset.columns}
    name = request.array or next((n for n in ("x", "x_test") if n in arrays), None)
    if name is None or name not in arrays:
        raise InvalidInput(
            f"dataset '{dataset.id}' has no array '{request.array or 'x'}' "
            f"(its arrays: {', '.join(arrays)})",
            field="array",
        )
    shape = list(arrays[name]["shape"][1:])
    expected = list(model.input_schema["shape"])
    if shape != expected:
        raise InvalidInput(
            f"array '{name}' holds samples of shape {shape}; the model takes {expected}",
            field="array",
        )
    return name


def _rows(dataset: Dataset, array: str | None) -> int:
    if array is None:
        return dataset.rows
    column = next(c for c in dataset.columns if c["name"] == array)
    return int(column["shape"][0])


def get(session: Session, principal: Principal, job_id: str) -> tuple[Job, BatchPrediction]:
    job = jobs.get(session, principal, job_id, kind=JobKind.batch_prediction)
    return job, session.get_one(BatchPrediction, job.id)


def page(
    session: Session, principal: Principal, status: JobStatus | None, limit: int, offset: int
) -> tuple[list[tuple[Job, BatchPrediction]], int]:
    query = (
        select(Job, BatchPrediction)
        .join(BatchPrediction, BatchPrediction.job_id == Job.id)
        .where(principal.visible(Job.owner), Job.kind == JobKind.batch_prediction)
    )
    if status is not None:
        query = query.where(Job.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(
        query.order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)
    ).all()
    return [(row[0], row[1]) for row in rows], total


def cancel(session: Session, principal: Principal, job_id: str) -> tuple[Job, BatchPrediction]:
    """A queued batch prediction is cancelled now; a running one after its current chunk."""
    job, batch = get(session, principal, job_id)
    jobs.cancel_job(session, job)
    return job, batch


def delete(session: Session, principal: Principal, job_id: str) -> None:
    """A batch prediction that ended, with its files; 409 while it is queued or running."""
    job, batch = get(session, principal, job_id)
    if job.status in ACTIVE_STATUSES:
        raise Conflict(
            f"batch prediction '{job_id}' is {job.status}; cancel it first "
            f"(POST /v1/batch-predictions/{job_id}/cancel)",
            field="job_id",
        )
    keys = [key for key in (batch.result_key, batch.errors_key) if key]
    session.delete(job)
    session.flush()
    for key in keys:
        storage.delete(key)


def open_file(
    session: Session, principal: Principal, job_id: str, which: str
) -> tuple[IO[bytes], int, str]:
    """The result (or errors) file of a batch prediction that succeeded: open file, size, and
    its download name."""
    job, batch = get(session, principal, job_id)
    if job.status != JobStatus.succeeded:
        reason = f": {job.error}" if job.error else ""
        raise Conflict(
            f"batch prediction '{job_id}' is {job.status}{reason}; its files exist once it "
            "succeeded",
            field="job_id",
        )
    key = batch.result_key if which == "result" else batch.errors_key
    if key is None:  # pragma: no cover - a succeeded job always wrote both
        raise NotFound(f"batch prediction '{job_id}' has no {which} file", field="job_id")
    handle, size = storage.open_read(key)
    extension = batch.output_format if which == "result" else "csv"
    return handle, size, f"{job_id}-{which}.{extension}"


def result_key(job_id: str, which: str, output_format: str) -> str:
    extension = output_format if which == "result" else "csv"
    return f"predictions/{job_id}/{which}.{extension}"


def to_read(job: Job, batch: BatchPrediction) -> BatchPredictionRead:
    duration = None
    if job.started_at is not None:
        end = job.finished_at or utcnow()
        duration = (jobs.aware(end) - jobs.aware(job.started_at)).total_seconds()
    base = f"/v1/batch-predictions/{job.id}"
    metrics: dict[str, Any] | None = batch.metrics
    return BatchPredictionRead(
        id=job.id,
        status=JobStatus(job.status).value,
        model=batch.model_ref,
        model_id=batch.model_id,
        dataset_id=job.dataset_id,
        task=job.task,
        output_format=batch.output_format,
        passthrough_columns=list(batch.passthrough),
        array=batch.array,
        progress=BatchProgress(
            rows_done=batch.rows_done, rows_total=batch.rows_total, rows_failed=batch.rows_failed
        ),
        metrics=metrics,
        result_bytes=batch.result_bytes,
        errors_bytes=batch.errors_bytes,
        error=job.error,
        worker=job.worker,
        attempts=job.attempts,
        links=BatchLinks(result=f"{base}/result", errors=f"{base}/errors", events=f"{base}/events"),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        duration_seconds=duration,
    )


def state_of(session: Session, job: Job) -> BatchPredictionRead:
    """A batch-prediction job as GET /v1/batch-predictions/{id} shows it."""
    return to_read(job, session.get_one(BatchPrediction, job.id))
