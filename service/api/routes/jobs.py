"""Training jobs: submit, list, read, history, cancel."""

from typing import Annotated

from fastapi import Body, Header, Query, Response, status

from service import jobs
from service.api.deps import CurrentPrincipal, Limit, Offset, SessionDep, v1_router
from service.core.orm import JobStatus
from service.schemas import examples
from service.schemas.common import ErrorBody, Page
from service.schemas.jobs import HistoryRead, JobCreate, JobRead

router = v1_router("/v1/jobs", "jobs")

JOB_EXAMPLES = {
    "concrete": {
        "summary": "Concrete strength regression (course)",
        "value": examples.CONCRETE_REGRESSION,
    },
    "mnist": {"summary": "MNIST classifier (course)", "value": examples.MNIST_CLASSIFIER},
    "penguins": {
        "summary": "Penguin species, missing rows dropped",
        "value": examples.PENGUINS_CLASSIFIER,
    },
}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses={429: {"model": ErrorBody, "description": "Too many active jobs; see Retry-After."}},
)
def create_job(
    session: SessionDep,
    principal: CurrentPrincipal,
    response: Response,
    request: Annotated[JobCreate, Body(openapi_examples=JOB_EXAMPLES)],
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JobRead:
    """Submit a training job; it is queued for a worker. Poll `Location` for its status."""
    job = jobs.submit(session, principal, request, idempotency_key)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return jobs.to_read(job)


@router.get("", response_model=Page[JobRead])
def list_jobs(
    session: SessionDep,
    principal: CurrentPrincipal,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[JobRead]:
    """List your jobs, newest first, optionally with one status."""
    items, total = jobs.page(session, principal, status_filter, limit, offset)
    return Page(items=[jobs.to_read(j) for j in items], total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobRead)
def get_job(session: SessionDep, principal: CurrentPrincipal, job_id: str) -> JobRead:
    """One job: status, progress (epoch of epochs), latest metrics, timings, error, model id."""
    return jobs.to_read(jobs.get(session, principal, job_id))


@router.get("/{job_id}/history", response_model=HistoryRead)
def get_job_history(
    session: SessionDep,
    principal: CurrentPrincipal,
    job_id: str,
    limit: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    offset: Offset = 0,
    after_epoch: Annotated[
        int | None,
        Query(ge=0, le=2**31 - 1, description="Only epochs after this one: the next page."),
    ] = None,
    max_points: Annotated[
        int | None,
        Query(
            ge=2,
            le=100_000,
            description="At most this many rows, evenly spaced, first and last epoch kept.",
        ),
    ] = None,
) -> HistoryRead:
    """One row per epoch with every loss and metric Keras logged, train and validation."""
    return jobs.history(session, principal, job_id, limit, offset, after_epoch, max_points)


@router.post("/{job_id}/cancel", response_model=JobRead)
def cancel_job(session: SessionDep, principal: CurrentPrincipal, job_id: str) -> JobRead:
    """Cancel: a queued job never runs; a running one stops at the next batch and is cancelled."""
    return jobs.to_read(jobs.cancel(session, principal, job_id))
