"""Batch predictions: submit, list, read, cancel, delete, download the result and errors files.
Their live events: `service.api.routes.events`."""

from collections.abc import Iterator
from typing import IO, Annotated, Any

from fastapi import Body, Query, Response, status
from fastapi.responses import StreamingResponse

from service import scoring, webhooks
from service.api.deps import CurrentPrincipal, Limit, Offset, SessionDep, v1_router
from service.core.orm import JobStatus
from service.schemas.common import ErrorBody, Page
from service.schemas.scoring import BatchPredictionCreate, BatchPredictionRead
from service.schemas.webhooks import WebhookDeliveryRead

router = v1_router("/v1/batch-predictions", "batch predictions")

EXAMPLES = {
    "alias": {
        "summary": "Score a table with the model an alias points at",
        "value": {
            "model": "concrete@production",
            "dataset_id": "concrete",
            "output_format": "csv",
            "passthrough_columns": ["Age"],
        },
    },
    "parquet": {
        "summary": "A model id, Parquet out",
        "value": {"model": "<model id>", "dataset_id": "<dataset id>", "output_format": "parquet"},
    },
}

_FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file, streamed.",
        "content": {
            "text/csv": {},
            "application/vnd.apache.parquet": {},
            "application/jsonl": {},
        },
    },
    409: {"model": ErrorBody, "description": "The batch prediction has not succeeded."},
}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchPredictionRead,
    responses={429: {"model": ErrorBody, "description": "Too many active jobs; see Retry-After."}},
)
def create_batch_prediction(
    session: SessionDep,
    principal: CurrentPrincipal,
    response: Response,
    request: Annotated[BatchPredictionCreate, Body(openapi_examples=EXAMPLES)],
) -> BatchPredictionRead:
    """Score a whole dataset with a model: a job that a worker runs, chunk by chunk, into a result
    file (rows in input order: `row`, the passthrough columns, `prediction`, and
    `probability_<label>` per class) and an errors file (`row`, `column`, `reason`) of the rows
    that could not be scored. It counts as one of your active jobs. If the dataset has the
    model's target column(s), `metrics` compares the predictions with them."""
    job = scoring.submit(session, principal, request)
    response.headers["Location"] = f"/v1/batch-predictions/{job.id}"
    return scoring.state_of(session, job)


@router.get("", response_model=Page[BatchPredictionRead])
def list_batch_predictions(
    session: SessionDep,
    principal: CurrentPrincipal,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[BatchPredictionRead]:
    """Your batch predictions, newest first, optionally with one status."""
    items, total = scoring.page(session, principal, status_filter, limit, offset)
    return Page(
        items=[scoring.to_read(job, batch) for job, batch in items],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/{job_id}", response_model=BatchPredictionRead)
def get_batch_prediction(
    session: SessionDep, principal: CurrentPrincipal, job_id: str
) -> BatchPredictionRead:
    """One batch prediction: status, rows done of rows total, rows failed, metrics, files."""
    return scoring.to_read(*scoring.get(session, principal, job_id))


@router.post(
    "/{job_id}/cancel",
    response_model=BatchPredictionRead,
    responses={409: {"model": ErrorBody, "description": "It already ended."}},
)
def cancel_batch_prediction(
    session: SessionDep, principal: CurrentPrincipal, job_id: str
) -> BatchPredictionRead:
    """A queued batch prediction is cancelled now; a running one after the chunk it scores."""
    return scoring.to_read(*scoring.cancel(session, principal, job_id))


@router.delete(
    "/{job_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={409: {"model": ErrorBody, "description": "It is queued or running."}},
)
def delete_batch_prediction(session: SessionDep, principal: CurrentPrincipal, job_id: str) -> None:
    """A batch prediction that ended, and its files (they count against your storage quota)."""
    scoring.delete(session, principal, job_id)


@router.get("/{job_id}/deliveries", response_model=list[WebhookDeliveryRead])
def list_batch_prediction_deliveries(
    session: SessionDep, principal: CurrentPrincipal, job_id: str
) -> list[WebhookDeliveryRead]:
    """The webhook delivery to its callback_url, with every attempt (empty without one)."""
    scoring.get(session, principal, job_id)
    return webhooks.deliveries(session, principal, job_id)


def _download(session: SessionDep, principal: CurrentPrincipal, job_id: str, which: str) -> Any:
    handle, size, name = scoring.open_file(session, principal, job_id, which)
    extension = name.rsplit(".", 1)[-1]
    return StreamingResponse(
        _chunks(handle),
        media_type=scoring.MEDIA_TYPES[extension],
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="dendrite-{name}"',
        },
    )


@router.get("/{job_id}/result", response_class=StreamingResponse, responses=_FILE_RESPONSES)
def download_result(session: SessionDep, principal: CurrentPrincipal, job_id: str) -> Any:
    """The result file, in the format asked for."""
    return _download(session, principal, job_id, "result")


@router.get("/{job_id}/errors", response_class=StreamingResponse, responses=_FILE_RESPONSES)
def download_errors(session: SessionDep, principal: CurrentPrincipal, job_id: str) -> Any:
    """The errors file: a CSV of `row` (0-based, as in the result), `column` and `reason`, one
    line per row that was not scored; only its header when every row was."""
    return _download(session, principal, job_id, "errors")


def _chunks(handle: IO[bytes]) -> Iterator[bytes]:
    with handle:
        yield from iter(lambda: handle.read(1 << 20), b"")
