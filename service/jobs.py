"""Job use cases: submit, read, history, cancel, and failing jobs whose worker went silent."""

import hashlib
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service import datasets, queue
from service.errors import Conflict, NotFound
from service.ml import plan as plans
from service.orm import ACTIVE_STATUSES, EpochMetric, Job, JobStatus, utcnow
from service.schemas import EpochRead, HistoryRead, JobCreate, JobRead, Progress


def _fingerprint(request: JobCreate) -> str:
    body = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def submit(session: Session, request: JobCreate, idempotency_key: str | None = None) -> Job:
    """Check the request against its dataset, record the job, and queue it after the commit."""
    fingerprint = _fingerprint(request)
    if idempotency_key is not None:
        existing = _replay(session, idempotency_key, fingerprint)
        if existing is not None:
            return existing
    dataset = datasets.get(session, request.dataset_id)
    plan = plans.resolve(request, dataset)
    resolved = request.model_copy(deep=True)
    resolved.dataset_id = dataset.id
    resolved.training.loss = plan.loss
    resolved.training.metrics = plan.metrics
    resolved.training.epochs = plan.epochs
    if resolved.training.seed is None:
        resolved.training.seed = random.randrange(2**31)
    resolved.network.output_activation = plan.output_activation
    job = Job(
        dataset_id=dataset.id,
        task=request.task,
        request=resolved.model_dump(mode="json"),
        device=request.device,
        epochs=plan.epochs,
        idempotency_key=idempotency_key,
        request_sha256=fingerprint,
    )
    try:
        with session.begin_nested():  # a concurrent request may take the same key first
            session.add(job)
    except IntegrityError:
        existing = _replay(session, idempotency_key or "", fingerprint)
        if existing is None:
            raise
        return existing
    queue.enqueue_training(session, job.id, job.device)
    return job


def _replay(session: Session, idempotency_key: str, fingerprint: str) -> Job | None:
    """The job an earlier request with this key made; 409 if that request had another body."""
    existing = session.scalar(select(Job).where(Job.idempotency_key == idempotency_key))
    if existing is not None and existing.request_sha256 != fingerprint:
        raise Conflict(
            "this Idempotency-Key was already used with a different request body; "
            "use a new key for a new job",
            field="Idempotency-Key",
        )
    return existing


def get(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"job '{job_id}' does not exist", field="job_id")
    return job


def page(
    session: Session, status: JobStatus | None, limit: int, offset: int
) -> tuple[list[Job], int]:
    query = select(Job)
    if status is not None:
        query = query.where(Job.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = session.scalars(
        query.order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)
    ).all()
    return list(items), total


def history(session: Session, job_id: str, limit: int | None, offset: int) -> HistoryRead:
    get(session, job_id)
    query = select(EpochMetric).where(EpochMetric.job_id == job_id).order_by(EpochMetric.epoch)
    total = session.scalar(
        select(func.count()).select_from(EpochMetric).where(EpochMetric.job_id == job_id)
    )
    rows = session.scalars(query.limit(limit).offset(offset)).all()
    return HistoryRead(
        job_id=job_id,
        total=total or 0,
        epochs=[EpochRead(epoch=r.epoch, seconds=r.seconds, metrics=r.metrics) for r in rows],
    )


def cancel(session: Session, job_id: str) -> Job:
    """A queued job is cancelled now; a running one stops at its next batch boundary."""
    job = get(session, job_id)
    if job.status == JobStatus.queued:
        job.status = JobStatus.cancelled
        job.finished_at = utcnow()
        job.error = "cancelled before it started"
    elif job.status == JobStatus.running:
        job.cancel_requested = True
    else:
        raise Conflict(f"job '{job_id}' already ended ({job.status}); there is nothing to cancel")
    session.flush()
    return job


def fail_stale(session: Session, stale_after: float, now: datetime | None = None) -> int:
    """Fail running jobs whose worker stopped sending heartbeats; returns how many."""
    cutoff = (now or utcnow()) - timedelta(seconds=stale_after)
    result = session.execute(
        update(Job)
        .where(Job.status == JobStatus.running, Job.heartbeat_at < cutoff)
        .values(
            status=JobStatus.failed,
            finished_at=now or utcnow(),
            error=f"the worker running this job stopped sending heartbeats for {stale_after:.0f} s "
            "(it died or lost the database); submit the job again",
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def fail_orphans(session: Session, worker: str) -> int:
    """At worker start: jobs this worker was running when it last stopped can never finish."""
    result = session.execute(
        update(Job)
        .where(Job.status == JobStatus.running, Job.worker == worker)
        .values(
            status=JobStatus.failed,
            finished_at=utcnow(),
            error=f"worker {worker} stopped while running this job; submit the job again",
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def active_for_dataset(session: Session, dataset_id: str) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.dataset_id == dataset_id, Job.status.in_(ACTIVE_STATUSES))
        )
        or 0
    )


def to_read(job: Job) -> JobRead:
    duration = None
    if job.started_at is not None:
        end = job.finished_at or utcnow()
        duration = (_aware(end) - _aware(job.started_at)).total_seconds()
    metrics: dict[str, Any] | None = job.latest_metrics
    return JobRead(
        id=job.id,
        dataset_id=job.dataset_id,
        task=job.task,
        status=JobStatus(job.status).value,
        progress=Progress(epoch=job.epoch, epochs=job.epochs),
        latest_metrics=metrics,
        error=job.error,
        device=job.device,
        device_used=job.device_used,
        model_id=job.model.id if job.model is not None else None,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        duration_seconds=duration,
        request=job.request,
    )


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
