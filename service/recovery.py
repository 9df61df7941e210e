"""Recovery of lost jobs: running jobs whose worker went silent or whose process died go back to
the queue (or fail, out of attempts or past their time limit), and queued jobs whose message the
broker lost are sent again.

Each change is a conditional UPDATE on the job row (`service.leases`), so several API processes
and workers recovering at once never collide. A part of a repeated job that recovery ends lets
its job follow (`service.experiments.repeats.settle`).
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from service import leases
from service.core import queue, storage
from service.core.config import get_settings
from service.core.orm import Job, JobStatus, utcnow
from service.experiments import repeats

log = logging.getLogger(__name__)


@dataclass
class Recovered:
    """What one recovery did: jobs queued again, jobs ended, queued jobs sent again."""

    requeued: int = 0
    failed: int = 0
    redispatched: int = 0

    def __bool__(self) -> bool:
        return bool(self.requeued or self.failed or self.redispatched)


def recover_silent(session: Session, now: datetime | None = None) -> Recovered:
    """Requeue (or fail) running jobs whose worker went silent; send again queued jobs that the
    broker lost. Flushes; the caller commits, and the messages go after the commit."""
    settings = get_settings()
    now = now or utcnow()
    recovered = Recovered()
    cutoff = now - timedelta(seconds=settings.stale_after)
    stale = or_(Job.heartbeat_at < cutoff, Job.heartbeat_at.is_(None))
    _recover(session, stale, recovered, now)
    recovered.redispatched = redispatch_lost(session, now)
    return recovered


def requeue_orphans(session: Session, worker: str) -> Recovered:
    """At worker start: jobs still `running` under this worker's name lost their process."""
    recovered = Recovered()
    _recover(session, Job.worker == worker, recovered, utcnow())
    return recovered


def requeue_lost(session: Session, job_id: str, worker: str, cause: str) -> Recovered:
    """From `worker`, as soon as the process that held `job_id` is gone (`cause`: how, e.g. "was
    killed (SIGKILL)"): requeue the job, or fail it once out of attempts, if the worker still
    holds it. The attempt counts against `max_attempts`, as `recover_silent`'s would."""
    recovered = Recovered()
    _recover(session, and_(Job.id == job_id, Job.worker == worker), recovered, utcnow(), cause)
    return recovered


def resend_unclaimed(session: Session, job_id: str) -> bool:
    """Send a queued job again whose message was consumed by a process that died before it
    claimed a job (a duplicate message is harmless: `claim`)."""
    device = session.scalar(select(Job.device).where(Job.id == job_id))
    resend = update(Job).where(Job.id == job_id, Job.status == JobStatus.queued)
    if device is None or not leases.changed(session, resend.values(dispatched_at=utcnow())):
        return False
    queue.enqueue_training(session, job_id, device)
    log.warning("job %s: the process that took its message died; sent again", job_id)
    return True


def _recover(
    session: Session,
    lost: ColumnElement[bool],
    recovered: Recovered,
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
        if not leases.changed(session, update(Job).where(still).values(**values)):
            continue  # another recovery, or the worker itself, got there first
        if ending is None:
            queue.enqueue_training(session, row.id, row.device)
            recovered.requeued += 1
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
            recovered.failed += 1
            log.warning("job %s: %s", row.id, ending[1])


def _ending(
    row: Any, max_attempts: int, now: datetime, cause: str | None = None
) -> tuple[JobStatus, str] | None:
    """What a job whose worker stopped becomes instead of going back to the queue, if anything."""
    if row.cancel_requested:
        return JobStatus.cancelled, "cancelled while running (its worker stopped before it could)"
    limit = get_settings().job_time_limit
    if row.started_at is not None and now - row.started_at > timedelta(seconds=limit):
        return JobStatus.failed, leases.time_limit_error()
    if row.attempts >= max_attempts and cause is not None:
        return JobStatus.failed, (
            f"attempt {row.attempts} of {max_attempts} (DENDRITE_MAX_ATTEMPTS) ended: the "
            f"process running this job on {row.worker} {cause}"
        )
    if row.attempts >= max_attempts:
        seen = row.heartbeat_at.strftime("%Y-%m-%d %H:%M:%S UTC") if row.heartbeat_at else "?"
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
    (`service.leases.claim_next`), so one message per queued job is all each needs; those sent
    longest ago go again. Counting every waiting message against the older jobs errs towards
    sending later rather than twice: a duplicate is harmless (it claims nothing once nothing is
    queued) but costs a worker process, and a job merely waiting behind others must not be sent
    again and again.
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
        except Exception:  # noqa: BLE001 - the broker is down; the next recovery tries again
            log.warning("could not count the messages in queue %s; sending none again now", name)
            continue
        for row in rows[: max(missing, 0)]:
            resend = update(Job).where(Job.id == row.id, Job.status == JobStatus.queued, unsent)
            if leases.changed(session, resend.values(dispatched_at=now)):
                queue.enqueue_training(session, row.id, row.device)
                sent += 1
                log.warning("job %s: its message was lost by the broker; sent again", row.id)
    return sent
