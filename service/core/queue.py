"""The API's only contact with Celery: send the training task by name, after the commit; and
which queued job a delivered message is for (`fairest`).

`celery_config` is shared with the worker (`workers.celery_app`), so both sides agree on the broker.

Fair share: a broker queue is first in, first out, so one owner's backlog would hold every later
owner's job behind it. Messages are therefore tokens: one is sent per queued job, but the worker
that takes one claims the fairest queued job of that queue (`fairest`), which may be another
owner's. The counts still match (one message per queued job, at most one claim per message), so
a lost message is found by counting (`service.recovery.redispatch_lost`).
"""

import logging
from datetime import UTC, datetime
from functools import lru_cache, partial
from typing import Any

from celery import Celery
from kombu import Exchange
from kombu import Queue as BrokerQueue
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, aliased

from service.core import broker, filemodes
from service.core.after_commit import after_commit
from service.core.config import Settings, get_settings
from service.core.orm import Job, JobStatus, utcnow

log = logging.getLogger(__name__)

TRAINING_TASK = "training.run_job"
QUEUES = {"auto": "training", "cpu": "training", "gpu": "training-gpu"}


def celery_config(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {"visibility_timeout": settings.visibility_timeout}
    if settings.embedded_broker:
        folder = settings.broker_dir
        filemodes.private_dir(folder, tighten=True)
        for sub in ("queue", "processed", "control"):
            filemodes.private_dir(folder / sub)
        assert settings.celery_broker_url.startswith(broker.SCHEME)
        options = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": settings.broker_polling_interval,
        }
    return {
        "broker_url": settings.celery_broker_url,
        "broker_transport_options": options,
        "broker_connection_retry_on_startup": True,
        "task_default_queue": QUEUES["auto"],
        "task_ignore_result": True,
        "result_backend": None,
        "task_serializer": "json",
        "accept_content": ["json"],
    }


@lru_cache
def celery() -> Celery:
    app = Celery("dendrite-api", set_as_current=False)
    app.conf.update(celery_config(get_settings()))
    return app


def enqueue_training(session: Session, job_id: str, device: str) -> None:
    """Send the job to its queue once the session's transaction commits (never before), and
    record when: a queued job the broker then loses is sent again (`service.recovery`)."""
    session.execute(update(Job).where(Job.id == job_id).values(dispatched_at=utcnow()))
    after_commit(session, partial(send_now, job_id, device))


def send_now(job_id: str, device: str) -> bool:
    """Send the training task for a job whose state is already committed; False if the broker
    refused it (the job stays queued, and recovery sends it again)."""
    try:
        celery().send_task(TRAINING_TASK, args=[job_id], queue=QUEUES[device])
    except Exception:  # any broker failure: the database still has the job
        log.exception("could not send job %s to the broker; it will be sent again", job_id)
        return False
    return True


def devices(queue: str) -> list[str]:
    """The job devices whose jobs wait in `queue`."""
    return [device for device, name in QUEUES.items() if name == queue]


def fairest(session: Session, queue: str) -> str | None:
    """The queued job that the next message taken from `queue` should run, or None.

    Owners take turns: first the owner with the fewest jobs running from this queue; among
    equals, the one that has waited longest for its turn: since its last job here ended, or
    since it queued its oldest job if that came later (an owner back after a pause does not
    collect the idle time). So a newcomer runs as soon as a slot frees, and a backlogged owner
    still gets its turn against owners who arrived after its last job ended. Within the owner,
    its oldest job: an owner's jobs start in the order they were submitted (a job handed back or
    requeued keeps its place). Repeated jobs are run by their parts, jobs like any other.
    """
    names = devices(queue)
    runnable = (Job.status == JobStatus.queued, Job.device.in_(names), Job.repeats == 1)
    other = aliased(Job)
    mine = (other.owner == Job.owner, other.device.in_(names), other.repeats == 1)
    running = (
        select(func.count())
        .select_from(other)
        .where(*mine, other.status == JobStatus.running)
        .scalar_subquery()
    )
    last_turn = (
        select(func.max(other.finished_at))
        .where(*mine, other.started_at.is_not(None))
        .scalar_subquery()
    )
    owners = session.execute(
        select(Job.owner, func.min(Job.created_at), running, last_turn)
        .where(*runnable)
        .group_by(Job.owner)
    ).all()
    if not owners:
        return None

    def turn(row: Any) -> tuple[int, datetime, datetime, str]:
        owner, oldest, busy, ended = row
        waiting_since = max(_aware(oldest), _aware(ended)) if ended else _aware(oldest)
        return busy, waiting_since, _aware(oldest), owner

    owner = min(turn(row) for row in owners)[-1]
    oldest = select(Job.id).where(*runnable, Job.owner == owner).order_by(Job.created_at, Job.id)
    return session.scalar(oldest.limit(1))


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def waiting(queue: str, timeout: float = 2.0) -> int:
    """How many messages wait in the broker's `queue` (declared and bound, as a worker would)."""
    entity = BrokerQueue(queue, Exchange(queue), routing_key=queue)
    with celery().connection_for_write() as connection:
        # Fail fast when the broker is down (kombu retries for several seconds otherwise).
        connection.ensure_connection(max_retries=1, timeout=timeout)
        bound = entity(connection.default_channel)
        bound.declare()
        return int(bound.queue_declare().message_count)


def broker_reachable(timeout: float = 2.0) -> bool:
    try:
        with celery().connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False
