"""A job's lease: a worker claims a queued job, shows on every write that it still holds it, and
hands the job back or ends it. (Jobs whose worker is lost: `service.recovery`.)

The job row is the lease. Every transition is one conditional UPDATE, so a duplicate delivery,
several API processes recovering at once and a worker back from a network partition all lose
cleanly: whoever no longer matches the row changes nothing.

The lease knows nothing of repeated jobs. Its transitions say what they did (an `Attempt`, or
whether the row changed), and whoever changed a job's status lets a repeated job follow its
part (`service.experiments.repeats.settle`): the worker (`workers.attempts`), `service.recovery`,
`service.jobs.cancel`.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, literal, select, update
from sqlalchemy.orm import Session

from service.core import queue, storage
from service.core.config import get_settings
from service.core.db import serialize
from service.core.orm import EpochMetric, Job, JobStatus, UTCDateTime, utcnow


@dataclass(frozen=True)
class Attempt:
    """One worker's hold on a running job; `number` is the job's `attempts` when it was claimed."""

    job_id: str
    worker: str
    number: int
    started_at: datetime  # the job's first start: the wall-time limit counts from here

    def holds(self) -> ColumnElement[bool]:
        return and_(
            Job.id == self.job_id,
            Job.status == JobStatus.running,
            Job.worker == self.worker,
            Job.attempts == self.number,
        )

    @property
    def deadline(self) -> datetime:
        return self.started_at + timedelta(seconds=get_settings().job_time_limit)


def time_limit_error() -> str:
    limit = get_settings().job_time_limit
    return f"the job ran longer than the {limit} s limit (DENDRITE_JOB_TIME_LIMIT); it was stopped"


def claim(session: Session, job_id: str, worker: str) -> Attempt | None:
    """Take a queued job for `worker`; None when it is not queued (a duplicate or late delivery)."""
    now = utcnow()
    claimed = changed(
        session,
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.queued)
        .values(
            status=JobStatus.running,
            attempts=Job.attempts + 1,
            worker=worker,
            heartbeat_at=now,
            started_at=func.coalesce(Job.started_at, literal(now, UTCDateTime())),
        ),
    )
    if not claimed:
        return None
    number, started_at = session.execute(
        select(Job.attempts, Job.started_at).where(Job.id == job_id)
    ).one()
    assert started_at is not None  # the claim set it
    return Attempt(job_id, worker, number, started_at)


def claim_next(session: Session, sent_for: str, worker: str) -> Attempt | None:
    """Take, for the message sent for job `sent_for`, the fairest queued job of that job's queue
    (`queue.fairest`: not necessarily `sent_for`, whose own turn may come with a later message);
    None when none is queued. Claims from one queue take turns, so each sees the others' running
    jobs."""
    device = session.scalar(select(Job.device).where(Job.id == sent_for))
    if device is None:  # the job is gone (its dataset was deleted), and with it its queue's name
        return None
    name = queue.QUEUES[device]
    serialize(session, f"claim:{name}")
    for _ in range(_CLAIM_TRIES):  # a job cancelled between the choice and the claim: the next
        job_id = queue.fairest(session, name)
        if job_id is None:
            return None
        attempt = claim(session, job_id, worker)
        if attempt is not None:
            return attempt
    return None


_CLAIM_TRIES = 5


def touch(session: Session, attempt: Attempt, **values: Any) -> bool:
    """Heartbeat (and any other `values`) while the attempt still holds the job."""
    return changed(
        session, update(Job).where(attempt.holds()).values(heartbeat_at=utcnow(), **values)
    )


def record_epoch(
    session: Session, attempt: Attempt, epoch: int, metrics: dict[str, float], seconds: float
) -> bool:
    """Write one epoch's row (replacing any earlier one for that epoch) and the job's progress."""
    if not touch(session, attempt, epoch=epoch, latest_metrics=metrics):
        return False
    session.execute(
        delete(EpochMetric).where(EpochMetric.job_id == attempt.job_id, EpochMetric.epoch == epoch)
    )
    session.add(EpochMetric(job_id=attempt.job_id, epoch=epoch, metrics=metrics, seconds=seconds))
    return True


def rewind(session: Session, attempt: Attempt, epoch: int) -> bool:
    """Before training resumes after `epoch`: forget the history a lost attempt wrote past it."""
    latest = session.scalar(
        select(EpochMetric.metrics).where(
            EpochMetric.job_id == attempt.job_id, EpochMetric.epoch == epoch
        )
    )
    if not touch(session, attempt, epoch=epoch, latest_metrics=latest):
        return False
    session.execute(
        delete(EpochMetric).where(EpochMetric.job_id == attempt.job_id, EpochMetric.epoch > epoch)
    )
    return True


def cancel_requested(session: Session, job_id: str) -> bool:
    return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def end(session: Session, attempt: Attempt, status: JobStatus, error: str | None = None) -> bool:
    """Record the attempt's outcome as the job's; its checkpoint goes (the job will not resume)."""
    ended = changed(
        session,
        update(Job).where(attempt.holds()).values(status=status, error=error, finished_at=utcnow()),
    )
    if ended:
        storage.delete_checkpoint(attempt.job_id)
    return ended


def hand_back(session: Session, attempt: Attempt) -> bool:
    """Return a running job to the queue from a worker that is shutting down; it resumes from its
    checkpoint elsewhere. A clean hand-back does not count against `max_attempts`."""
    device = session.scalar(select(Job.device).where(Job.id == attempt.job_id))
    handed = changed(
        session,
        update(Job)
        .where(attempt.holds())
        .values(status=JobStatus.queued, attempts=Job.attempts - 1, worker=None, heartbeat_at=None),
    )
    if handed:
        queue.enqueue_training(session, attempt.job_id, device or "auto")
    return handed


def changed(session: Session, statement: Any) -> bool:
    """Run a conditional UPDATE; True when it changed the one row it aims at."""
    result = session.execute(statement.execution_options(synchronize_session=False))
    return bool(getattr(result, "rowcount", 0) == 1)
