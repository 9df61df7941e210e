"""Job use cases: submit, read, history, cancel. (Recovery from failures: `service.recovery`.)"""

import hashlib
import json
import random
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service import datasets
from service.core import queue, storage
from service.core.config import get_settings
from service.core.db import serialize
from service.core.errors import Conflict, NotFound, TooManyRequests
from service.core.orm import (
    ACTIVE_STATUSES,
    EpochMetric,
    Job,
    JobKind,
    JobStatus,
    WebhookDelivery,
    utcnow,
)
from service.experiments import repeats
from service.keys import Principal
from service.ml import plan as plans
from service.schemas.jobs import EpochRead, HistoryRead, JobCreate, JobLinks, JobRead, Progress


def _fingerprint(request: JobCreate) -> str:
    body = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


RETRY_AFTER_SECONDS = 30  # when an owner has too many active jobs


def submit(
    session: Session,
    principal: Principal,
    request: JobCreate,
    idempotency_key: str | None = None,
) -> Job:
    """Check the request against its dataset, record the job, and queue it after the commit."""
    fingerprint = _fingerprint(request)
    scoped_key = _scoped(principal.owner, idempotency_key)
    if scoped_key is not None:
        existing = _replay(session, scoped_key, fingerprint)
        if existing is not None:
            return existing
    check_active_limit(session, principal.owner)
    dataset = datasets.get(session, principal, request.dataset_id)
    plan = plans.resolve(request, dataset)
    repeats.check(request, dataset)
    resolved = request.model_copy(deep=True)
    resolved.dataset_id = dataset.id
    resolved.training.loss = plan.loss
    resolved.training.metrics = plan.metrics
    resolved.training.epochs = plan.epochs
    if resolved.training.seed is None:
        resolved.training.seed = random.randrange(2**31)
    resolved.network.output_activation = plan.output_activation
    job = Job(
        owner=principal.owner,
        dataset_id=dataset.id,
        task=request.task,
        request=resolved.model_dump(mode="json"),
        device=request.device,
        epochs=plan.epochs,
        idempotency_key=scoped_key,
        request_sha256=fingerprint,
        repeats=request.repeats,
    )
    try:
        with session.begin_nested():  # a concurrent request may take the same key first
            session.add(job)
    except IntegrityError:
        existing = _replay(session, scoped_key or "", fingerprint)
        if existing is None:
            raise
        return existing
    if request.callback_url is not None:  # the outbox row, sent when the job ends
        session.add(WebhookDelivery(job_id=job.id, owner=job.owner, url=request.callback_url))
    if job.repeats > 1:
        repeats.fan_out(session, job)  # its parts run; the job follows them
    else:
        queue.enqueue_training(session, job.id, job.device)
    return job


def _scoped(owner: str, idempotency_key: str | None) -> str | None:
    """Idempotency keys are per owner; the column is globally unique, so it holds "owner:key"
    (a key too long to fit is replaced by its SHA-256)."""
    if idempotency_key is None:
        return None
    scoped = f"{owner}:{idempotency_key}"
    if len(scoped) > 255:
        scoped = f"{owner}:sha256:{hashlib.sha256(idempotency_key.encode()).hexdigest()}"
    return scoped


def active_jobs(session: Session, owner: str) -> int:
    """The owner's queued and running jobs (a repeated job counts once, not per part), counted
    with the owner's other submits held back until this transaction ends: otherwise
    simultaneous submits each count the others' jobs as absent, and all pass the limit."""
    serialize(session, f"active-jobs:{owner}")
    count = select(func.count()).select_from(Job)
    return (
        session.scalar(
            count.where(
                Job.owner == owner, Job.status.in_(ACTIVE_STATUSES), Job.parent_id.is_(None)
            )
        )
        or 0
    )


def check_active_limit(session: Session, owner: str) -> None:
    limit = get_settings().max_active_jobs_per_owner
    active = active_jobs(session, owner)
    if active >= limit:
        raise TooManyRequests(
            f"you have {active} queued or running jobs, the most one owner may have "
            f"(limit {limit}); wait until some end, or cancel some (POST /v1/jobs/{{id}}/cancel), "
            f"then submit again",
            retry_after=RETRY_AFTER_SECONDS,
        )


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


def get(
    session: Session, principal: Principal, job_id: str, kind: JobKind = JobKind.training
) -> Job:
    """A job of `kind` by id; another owner's job answers exactly as a missing one does."""
    job = session.get(Job, job_id)
    if job is None or not principal.can_see(job.owner) or job.kind != kind:
        noun = "job" if kind == JobKind.training else "batch prediction"
        raise NotFound(f"{noun} '{job_id}' does not exist", field="job_id")
    return job


def page(
    session: Session, principal: Principal, status: JobStatus | None, limit: int, offset: int
) -> tuple[list[Job], int]:
    query = select(Job).where(
        principal.visible(Job.owner), Job.parent_id.is_(None), Job.kind == JobKind.training
    )
    if status is not None:
        query = query.where(Job.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = session.scalars(
        query.order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)
    ).all()
    return list(items), total


def history(
    session: Session,
    principal: Principal,
    job_id: str,
    limit: int | None,
    offset: int,
    after_epoch: int | None = None,
    max_points: int | None = None,
) -> HistoryRead:
    """Epoch rows in order: those after `after_epoch` (a page's last epoch), evenly thinned to at
    most `max_points` rows that keep the first and the last (for plots of long jobs), then sliced
    by `offset` and `limit`. `total` counts every row of the job. Each filter runs on the
    (job_id, epoch) index of the table's unique constraint."""
    get(session, principal, job_id)
    total = session.scalar(
        select(func.count()).select_from(EpochMetric).where(EpochMetric.job_id == job_id)
    )
    where = [EpochMetric.job_id == job_id]
    if after_epoch is not None:
        where.append(EpochMetric.epoch > after_epoch)
    if max_points is not None:
        first, last, count = session.execute(
            select(func.min(EpochMetric.epoch), func.max(EpochMetric.epoch), func.count()).where(
                *where
            )
        ).one()
        if count > max_points:
            stride = -(-(count - 1) // (max_points - 1))
            where.append(or_((EpochMetric.epoch - first) % stride == 0, EpochMetric.epoch == last))
    query = (
        select(EpochMetric.epoch, EpochMetric.seconds, EpochMetric.metrics)
        .where(*where)
        .order_by(EpochMetric.epoch)
    )
    rows = session.execute(query.limit(limit).offset(offset)).all()
    return HistoryRead(
        job_id=job_id,
        total=total or 0,
        epochs=[EpochRead(epoch=r.epoch, seconds=r.seconds, metrics=r.metrics) for r in rows],
    )


def cancel(session: Session, principal: Principal, job_id: str) -> Job:
    """A queued job is cancelled now; a running one stops at its next batch boundary."""
    return cancel_job(session, get(session, principal, job_id))


def cancel_job(session: Session, job: Job) -> Job:
    """`cancel` for a job already looked up (of any kind)."""
    job_id = job.id
    if job.repeats > 1:
        return repeats.cancel(session, job)
    if job.status == JobStatus.queued:
        job.status = JobStatus.cancelled
        job.finished_at = utcnow()
        job.error = "cancelled before it started"
        storage.delete_checkpoint(job.id)  # one it handed back or lost its worker with
    elif job.status == JobStatus.running:
        job.cancel_requested = True
    else:
        raise Conflict(f"job '{job_id}' already ended ({job.status}); there is nothing to cancel")
    session.flush()
    repeats.settle(session, job.id)
    return job


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
        duration = (aware(end) - aware(job.started_at)).total_seconds()
    metrics: dict[str, Any] | None = job.latest_metrics
    return JobRead(
        id=job.id,
        dataset_id=job.dataset_id,
        task=job.task,
        status=JobStatus(job.status).value,
        progress=repeats.progress(job)
        if job.repeats > 1
        else Progress(epoch=job.epoch, epochs=job.epochs),
        latest_metrics=metrics,
        error=job.error,
        device=job.device,
        device_used=job.device_used,
        worker=job.worker,
        attempts=job.attempts,
        model_id=job.model.id if job.model is not None else None,
        links=JobLinks.for_job(job.id, job.task),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        duration_seconds=duration,
        timings=job.timings,
        request=job.request,
        parent_id=job.parent_id,
        sweep_id=job.sweep_id,
        repeats=repeats.summary(job) if job.repeats > 1 else None,
    )


def aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
