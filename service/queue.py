"""The API's only contact with Celery: send the training task by name, after the commit.

`celery_config` is shared with the worker (`workers.celery_app`), so both sides agree on the broker.
"""

import logging
from functools import lru_cache
from typing import Any

from celery import Celery
from kombu import Exchange
from kombu import Queue as BrokerQueue
from sqlalchemy import event, update
from sqlalchemy.orm import Session

from service import broker
from service.config import Settings, get_settings
from service.orm import Job, utcnow

log = logging.getLogger(__name__)

TRAINING_TASK = "training.run_job"
QUEUES = {"auto": "training", "cpu": "training", "gpu": "training-gpu"}
_PENDING = "dendrite_pending_jobs"


def celery_config(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {"visibility_timeout": settings.visibility_timeout}
    if settings.embedded_broker:
        folder = settings.broker_dir
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
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
    record when: a queued job the broker then loses is sent again (`service.attempts`)."""
    session.execute(update(Job).where(Job.id == job_id).values(dispatched_at=utcnow()))
    session.info.setdefault(_PENDING, []).append((job_id, device))


def send_now(job_id: str, device: str) -> bool:
    """Send the training task for a job whose state is already committed; False if the broker
    refused it (the job stays queued, and the sweep sends it again)."""
    try:
        celery().send_task(TRAINING_TASK, args=[job_id], queue=QUEUES[device])
    except Exception:  # any broker failure: the database still has the job
        log.exception("could not send job %s to the broker; it will be sent again", job_id)
        return False
    return True


def waiting(queue: str, timeout: float = 2.0) -> int:
    """How many messages wait in the broker's `queue` (declared and bound, as a worker would)."""
    entity = BrokerQueue(queue, Exchange(queue), routing_key=queue)
    with celery().connection_for_write() as connection:
        # Fail fast when the broker is down (kombu retries for several seconds otherwise).
        connection.ensure_connection(max_retries=1, timeout=timeout)
        bound = entity(connection.default_channel)
        bound.declare()
        return int(bound.queue_declare().message_count)


@event.listens_for(Session, "after_commit")
def _send_pending(session: Session) -> None:
    for job_id, device in session.info.pop(_PENDING, []):
        send_now(job_id, device)


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


def broker_reachable(timeout: float = 2.0) -> bool:
    try:
        with celery().connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False
