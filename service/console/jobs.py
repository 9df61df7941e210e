"""Jobs in the console: the list (filtered by status, sorted by a metric), the submit form
prefilled with the course's networks, and one job's page: its request, metrics table and learning
curves kept live by its event stream, test metrics, model, a predict form and the download."""

import json
from collections.abc import Iterator
from typing import IO, Annotated, Any, Literal

from fastapi import Form, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from service import datasets, jobs, models
from service.api.deps import SessionDep
from service.console.pages import Console, check_csrf, console_router, redirect, render
from service.core import errors
from service.core.orm import Dataset, JobStatus
from service.keys import ConsoleSession
from service.schemas import examples
from service.schemas.jobs import JobCreate, JobRead
from service.schemas.models import PredictRequest

router = console_router()

EXAMPLES = {
    "concrete": ("Concrete strength regression (course)", examples.CONCRETE_REGRESSION),
    "mnist": ("MNIST classifier (course)", examples.MNIST_CLASSIFIER),
}
FINAL = ("succeeded", "failed", "cancelled")
LISTED = 200  # the newest jobs a list shows (sorting happens among them)


def metric_names(reads: list[JobRead]) -> list[str]:
    """The metrics any of the jobs logged, losses first."""
    names = {name for job in reads for name in (job.latest_metrics or {})}
    return sorted(names, key=lambda name: (name.removeprefix("val_") != "loss", name))


@router.get("/jobs")
def list_jobs(
    request: Request,
    session: SessionDep,
    console: Console,
    status: Annotated[JobStatus | None, Query()] = None,
    sort: Annotated[str, Query(max_length=100)] = "",
    order: Annotated[Literal["asc", "desc"], Query()] = "asc",
) -> Response:
    """Your newest jobs with their status and latest metrics; pick some to compare."""
    items, total = jobs.page(session, console.principal, status, LISTED, 0)
    reads = [jobs.to_read(job) for job in items]
    if sort:
        # Jobs without the metric go last, whichever the order.
        def key(job: JobRead) -> tuple[bool, float]:
            value = (job.latest_metrics or {}).get(sort)
            if value is None:
                return (True, 0.0)
            return (False, value if order == "asc" else -value)

        reads.sort(key=key)
    return render(
        request,
        "jobs.html",
        console,
        jobs=reads,
        total=total,
        metrics=metric_names(reads),
        statuses=[s.value for s in JobStatus],
        status=status.value if status else "",
        sort=sort,
        order=order,
    )


def _new_job_page(
    request: Request,
    session: SessionDep,
    console: ConsoleSession,
    example: str,
    body: str | None = None,
    dataset_id: str = "",
    error: str | None = None,
) -> Response:
    owned, _total = datasets.page(session, console.principal, 200, 0)
    request_body = EXAMPLES.get(example, EXAMPLES["concrete"])[1]
    if body is None:
        body = json.dumps({k: v for k, v in request_body.items() if k != "dataset_id"}, indent=2)
        wanted = request_body["dataset_id"]
        dataset_id = dataset_id or next((d.id for d in owned if d.name == wanted), "")
    return render(
        request,
        "job_new.html",
        console,
        status_code=422 if error else 200,
        examples={name: label for name, (label, _) in EXAMPLES.items()},
        example=example,
        datasets=owned,
        dataset_id=dataset_id,
        body=body,
        error=error,
    )


@router.get("/jobs/new")
def new_job(
    request: Request,
    session: SessionDep,
    console: Console,
    example: Annotated[str, Query(max_length=20)] = "concrete",
    dataset: Annotated[str, Query(max_length=255)] = "",
) -> Response:
    """The submit form, prefilled with one of the course's networks."""
    return _new_job_page(request, session, console, example, dataset_id=dataset)


@router.post("/jobs")
def submit_job(
    request: Request,
    session: SessionDep,
    console: Console,
    csrf: Annotated[str, Form()],
    body: Annotated[str, Form(max_length=200_000)],
    dataset_id: Annotated[str, Form(max_length=255)] = "",
    example: Annotated[str, Form(max_length=20)] = "concrete",
) -> Response:
    """Submit the form's request as POST /v1/jobs does; then show the job."""
    check_csrf(console, csrf)
    try:
        parsed = json.loads(body)
        if not isinstance(parsed, dict):
            raise ValueError("the request must be a JSON object")
        if dataset_id:
            parsed["dataset_id"] = dataset_id
        job_request = JobCreate.model_validate(parsed)
    except (ValueError, ValidationError) as error:
        message = _validation_message(error)
        return _new_job_page(request, session, console, example, body, dataset_id, message)
    try:
        job = jobs.submit(session, console.principal, job_request, None)
    except errors.InvalidInput as error:
        return _new_job_page(request, session, console, example, body, dataset_id, error.detail)
    return redirect(f"/ui/jobs/{job.id}")


def _validation_message(error: ValueError | ValidationError) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(
            "/" + "/".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in error.errors()
        )
    return f"the request is not valid JSON: {error}"


def _example_rows(dataset: Dataset | None, job: JobRead) -> str:
    """Two rows of the job's dataset without its target, to start the predict form with."""
    if dataset is None:
        return "[]"
    if dataset.format == "npz":  # one image (array) is enough to try
        return json.dumps([row["x"] for row in datasets.preview(dataset, 1)], separators=(",", ":"))
    targets = job.request.get("target")
    targets = targets if isinstance(targets, list) else [targets]
    features = job.request.get("features")
    rows = [
        {k: v for k, v in row.items() if k not in targets and (not features or k in features)}
        for row in datasets.preview(dataset, 2)
    ]
    return json.dumps(rows, indent=2)


def _job_page(
    request: Request,
    session: SessionDep,
    console: ConsoleSession,
    job_id: str,
    instances: str | None = None,
    predictions: list[Any] | None = None,
    predict_error: str | None = None,
) -> Response:
    read = jobs.to_read(jobs.get(session, console.principal, job_id))
    try:
        dataset: Dataset | None = datasets.get(session, console.principal, read.dataset_id)
    except errors.NotFound:  # deleted since (its finished jobs may stay)
        dataset = None
    history = jobs.history(session, console.principal, job_id, None, 0, max_points=2000)
    model = (
        models.to_read(models.get(session, console.principal, read.model_id))
        if (read.model_id)
        else None
    )
    columns = sorted(
        {name for row in history.epochs for name in row.metrics},
        key=lambda name: (name.removeprefix("val_"), name.startswith("val_")),
    )
    data = {
        "job_id": read.id,
        "status": read.status,
        "final": read.status in FINAL,
        "epochs_planned": read.progress.epochs,
        "events": f"/ui/jobs/{read.id}/events",
        "history": [row.model_dump() for row in history.epochs],
    }
    return render(
        request,
        "job.html",
        console,
        status_code=422 if predict_error else 200,
        job=read,
        model=model,
        history=history.epochs,
        columns=columns,
        data=data,
        request_json=json.dumps(read.request, indent=2),
        dataset=dataset,
        instances=instances if instances is not None else _example_rows(dataset, read),
        predictions=json.dumps(predictions, indent=2) if predictions is not None else None,
        predict_error=predict_error,
    )


@router.get("/jobs/{job_id}")
def show_job(request: Request, session: SessionDep, console: Console, job_id: str) -> Response:
    """One job, followed live while it trains."""
    return _job_page(request, session, console, job_id)


@router.post("/jobs/{job_id}/predict")
def predict(
    request: Request,
    session: SessionDep,
    console: Console,
    job_id: str,
    csrf: Annotated[str, Form()],
    instances: Annotated[str, Form(max_length=1_000_000)],
) -> Response:
    """Predict with the job's model from the form's JSON rows (as POST /v1/models/{id}/predict)."""
    check_csrf(console, csrf)
    read = jobs.to_read(jobs.get(session, console.principal, job_id))
    if read.model_id is None:
        raise errors.Conflict(f"job '{job_id}' has no model ({read.status}): nothing predicts")
    try:
        rows = PredictRequest.model_validate({"instances": json.loads(instances)}).instances
        predictions = models.predict(console.principal, read.model_id, rows)
    except (ValueError, ValidationError) as error:
        return _job_page(request, session, console, job_id, instances, None, str(error))
    except errors.InvalidInput as error:
        return _job_page(request, session, console, job_id, instances, None, error.detail)
    return _job_page(request, session, console, job_id, instances, predictions)


@router.get("/models/{model_id:path}/download")
def download_model(session: SessionDep, console: Console, model_id: str) -> Response:
    """The model's `.keras` file (as GET /v1/models/{id}/download)."""
    handle, size = models.open_file(session, console.principal, model_id)
    name = "".join(c if c.isalnum() or c in "._-" else "-" for c in model_id)
    return StreamingResponse(
        _chunks(handle),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="dendrite-{name}.keras"',
        },
    )


def _chunks(handle: IO[bytes]) -> Iterator[bytes]:
    with handle:
        yield from iter(lambda: handle.read(1 << 20), b"")
