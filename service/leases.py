"""A job's attempts: a worker claims a queued job, shows on every write that it still holds it, and
hands the job back or ends it; the sweep returns jobs whose worker went silent to the queue and
sends queued jobs again when the broker has lost their messages.

The job row is the lease. Every transition is one conditional UPDATE, so a duplicate delivery,
several API processes sweeping at once and a worker back from a network partition all lose
cleanly: whoever no longer matches the row changes nothing.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, literal, or_, select, update
from sqlalchemy.orm import Session

from service.core import queue, storage
from service.core.config import get_settings
from service.core.db import serialize
from service.core.orm import EpochMetric, Job, JobStatus, UTCDateTime, utcnow
from service.experiments import repeats

log = logging.getLogger(__name__)


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
        return _aware(self.started_at) + timedelta(seconds=get_settings().job_time_limit)


def time_limit_error() -> str:
    limit = get_settings().job_time_limit
    return f"the job ran longer than the {limit} s limit (DENDRITE_JOB_TIME_LIMIT); it was stopped"


def claim(session: Session, job_id: str, worker: str) -> Attempt | None:
    """Take a queued job for `worker`; None when it is not queued (a duplicate or late delivery)."""
    now = utcnow()
    claimed = _changed(
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
    repeats.settle(session, job_id)  # a repeated job runs once one of its parts does
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
    return _changed(
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
    ended = _changed(
        session,
        update(Job).where(attempt.holds()).values(status=status, error=error, finished_at=utcnow()),
    )
    if ended:
        storage.delete_checkpoint(attempt.job_id)
        repeats.settle(session, attempt.job_id)
    return ended


def hand_back(session: Session, attempt: Attempt) -> bool:
    """Return a running job to the queue from a worker that is shutting down; it resumes from its
    checkpoint elsewhere. A clean hand-back does not count against `max_attempts`."""
    device = session.scalar(select(Job.device).where(Job.id == attempt.job_id))
    handed = _changed(
        session,
        update(Job)
        .where(attempt.holds())
        .values(status=JobStatus.queued, attempts=Job.attempts - 1, worker=None, heartbeat_at=None),
    )
    if handed:
        queue.enqueue_training(session, attempt.job_id, device or "auto")
    return handed


# --- the sweep ------------------------------------------------------------------------------


@dataclass
class Swept:
    requeued: int = 0
    failed: int = 0
    redispatched: int = 0

    def __bool__(self) -> bool:
        return bool(self.requeued or self.failed or self.redispatched)


def sweep(session: Session, now: datetime | None = None) -> Swept:
    """Requeue (or fail) running jobs whose worker went silent; send again queued jobs that the
    broker lost. Flushes; the caller commits, and the messages go after the commit."""
    settings = get_settings()
    now = now or utcnow()
    swept = Swept()
    cutoff = now - timedelta(seconds=settings.stale_after)
    stale = or_(Job.heartbeat_at < cutoff, Job.heartbeat_at.is_(None))
    _recover(session, stale, swept, now)
    swept.redispatched = redispatch_lost(session, now)
    return swept


def requeue_orphans(session: Session, worker: str) -> Swept:
    """At worker start: jobs still `running` under this worker's name lost their process."""
    swept = Swept()
    _recover(session, Job.worker == worker, swept, utcnow())
    return swept


def requeue_lost(session: Session, job_id: str, worker: str, cause: str) -> Swept:
    """From `worker`, as soon as the process that held `job_id` is gone (`cause`: how, e.g. "was
    killed (SIGKILL)"): requeue the job, or fail it once out of attempts, if the worker still
    holds it. The attempt counts against `max_attempts`, as the sweep's would."""
    swept = Swept()
    _recover(session, and_(Job.id == job_id, Job.worker == worker), swept, utcnow(), cause)
    return swept


def resend_unclaimed(session: Session, job_id: str) -> bool:
    """Send a queued job again whose message was consumed by a process that died before it
    claimed a job (a duplicate message is harmless: `claim`)."""
    device = session.scalar(select(Job.device).where(Job.id == job_id))
    resend = update(Job).where(Job.id == job_id, Job.status == JobStatus.queued)
    if device is None or not _changed(session, resend.values(dispatched_at=utcnow())):
        return False
    queue.enqueue_training(session, job_id, device)
    log.warning("job %s: the process that took its message died; sent again", job_id)
    return True


def _recover(
    session: Session,
    lost: ColumnElement[bool],
    swept: Swept,
    now: datetime,
    cause: str | None = None,
) -> None:
    max_attempts = get_settings().max_attempts
    rows = session.execute(
        select(
            Job.id,
            Job.device,
            Job.attempts,
            Job.worker,
            Job.heartbeat_at,
            Job.started_at,
            Job.cancel_requested,
        ).where(Job.status == JobStatus.running, lost, Job.repeats == 1)  # repeated: see parts
    ).all()
    for row in rows:
        still = and_(
            Job.id == row.id,
            Job.status == JobStatus.running,
            Job.attempts == row.attempts,
            lost,
        )
        ending = _ending(row, max_attempts, now, cause)
        if ending is None:
            values: dict[str, Any] = {
                "status": JobStatus.queued,
                "worker": None,
                "heartbeat_at": None,
            }
        else:
            values = {"status": ending[0], "error": ending[1], "finished_at": now}
        if not _changed(session, update(Job).where(still).values(**values)):
            continue  # another sweep, or the worker itself, got there first
        if ending is None:
            queue.enqueue_training(session, row.id, row.device)
            swept.requeued += 1
            log.warning(
                "job %s: the process running it on %s %s (attempt %d of %d); queued again",
                row.id,
                row.worker,
                cause or "stopped sending heartbeats",
                row.attempts,
                max_attempts,
            )
        else:
            storage.delete_checkpoint(row.id)
            repeats.settle(session, row.id)
            swept.failed += 1
            log.warning("job %s: %s", row.id, ending[1])


def _ending(
    row: Any, max_attempts: int, now: datetime, cause: str | None = None
) -> tuple[JobStatus, str] | None:
    """What a job whose worker stopped becomes instead of going back to the queue, if anything."""
    if row.cancel_requested:
        return JobStatus.cancelled, "cancelled while running (its worker stopped before it could)"
    limit = get_settings().job_time_limit
    if row.started_at is not None and now - _aware(row.started_at) > timedelta(seconds=limit):
        return JobStatus.failed, time_limit_error()
    if row.attempts >= max_attempts and cause is not None:
        return JobStatus.failed, (
            f"attempt {row.attempts} of {max_attempts} (DENDRITE_MAX_ATTEMPTS) ended: the "
            f"process running this job on {row.worker} {cause}"
        )
    if row.attempts >= max_attempts:
        seen = (
            _aware(row.heartbeat_at).strftime("%Y-%m-%d %H:%M:%S UTC") if row.heartbeat_at else "?"
        )
        return JobStatus.failed, (
            f"the worker running this job stopped {row.attempts} times (DENDRITE_MAX_ATTEMPTS); "
            f"it was last seen at {seen} on {row.worker}. A worker that dies on every attempt "
            "often ran out of memory: try a smaller batch_size or network, then submit again"
        )
    return None


def redispatch_lost(session: Session, now: datetime | None = None) -> int:
    """Send again the queued jobs whose messages the broker no longer holds.

    A broker can lose messages (a restart without persistence, a send that failed after the
    commit) and the database cannot see which. It can count. Jobs sent in the last
    `redispatch_after` seconds may still be on their way, so only the others are considered:
    when the queue holds fewer messages than there are of them, the difference is lost. Which
    jobs they were sent for does not matter: a message claims the fairest queued job of its queue
    (`claim_next`), so one message per queued job is all each needs; those sent longest ago go
    again. Counting every waiting message against the older jobs errs towards sending later rather
    than twice: a duplicate is harmless (it claims nothing once nothing is queued) but costs a
    worker process, and a job merely waiting behind others must not be sent again and again.
    """
    settings = get_settings()
    now = now or utcnow()
    cutoff = now - timedelta(seconds=settings.redispatch_after)
    unsent = or_(Job.dispatched_at.is_(None), Job.dispatched_at < cutoff)
    sent = 0
    for name in sorted(set(queue.QUEUES.values())):
        devices = [device for device, queue_name in queue.QUEUES.items() if queue_name == name]
        rows = session.execute(
            select(Job.id, Job.device)
            .where(Job.status == JobStatus.queued, Job.device.in_(devices), unsent)
            .where(Job.repeats == 1)  # a repeated job is never sent; its parts are
            .order_by(Job.dispatched_at.asc().nulls_first(), Job.created_at)
        ).all()
        if not rows:
            continue
        try:
            missing = len(rows) - queue.waiting(name)
        except Exception:  # noqa: BLE001 - the broker is down; the next sweep tries again
            log.warning("could not count the messages in queue %s; sending none again now", name)
            continue
        for row in rows[: max(missing, 0)]:
            resend = update(Job).where(Job.id == row.id, Job.status == JobStatus.queued, unsent)
            if _changed(session, resend.values(dispatched_at=now)):
                queue.enqueue_training(session, row.id, row.device)
                sent += 1
                log.warning("job %s: its message was lost by the broker; sent again", row.id)
    return sent


def _changed(session: Session, statement: Any) -> bool:
    result = session.execute(statement.execution_options(synchronize_session=False))
    return bool(getattr(result, "rowcount", 0) == 1)


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
