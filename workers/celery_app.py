"""The worker's Celery app. One child process per job; the parent never imports TensorFlow.

Running any TensorFlow op in the parent before the pool forks deadlocks every child, so the
child imports TensorFlow as it starts (`worker_process_init`): the next job finds it warm.
"""

import logging
from typing import Any

from celery import Celery
from celery.signals import worker_process_init, worker_ready

from service.config import get_settings
from service.queue import QUEUES, celery_config

log = logging.getLogger(__name__)

app = Celery("dendrite", include=["workers.tasks"])
app.conf.update(celery_config(get_settings()))
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=False,
    worker_prefetch_multiplier=1,
    worker_max_tasks_per_child=1,
    worker_enable_remote_control=not get_settings().embedded_broker,
    worker_hijack_root_logger=False,
    task_routes={"training.run_job": {"queue": QUEUES["auto"]}},
)


@worker_ready.connect
def _fail_orphans(sender: Any = None, **_: Any) -> None:
    """Jobs left `running` under this node name by a previous run can never finish: fail them."""
    from service import jobs
    from service.db import get_engine, session_scope

    with session_scope() as session:
        count = jobs.fail_orphans(session, str(sender.hostname))
    get_engine().dispose()  # children must not share the parent's connections
    if count:
        log.warning("failed %d job(s) left running by this worker's previous run", count)


@worker_process_init.connect
def _warm_child(**_: Any) -> None:
    from service.db import get_engine

    get_engine().dispose(close=False)
    import workers.training  # noqa: F401 - warm TensorFlow and Keras before the job arrives
