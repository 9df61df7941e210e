"""The worker's Celery app. One child process per job; the parent never imports TensorFlow.

Running any TensorFlow op in the parent before the pool forks deadlocks every child, so the
child imports TensorFlow as it starts (`worker_process_init`): the next job finds it warm.

The job table, not the broker, decides what runs (`service.attempts`): a task claims its job
first, so a duplicate or late delivery does nothing. A child that dies (out of memory, SIGKILL)
takes its message with it (`task_reject_on_worker_lost=False`); the sweep requeues the job, a
bounded number of times, where a redelivered message would retry it forever.
"""

import logging
import time
from typing import Any

from celery import Celery
from celery.signals import (
    setup_logging,
    worker_process_init,
    worker_ready,
    worker_shutting_down,
)

from service import logs, queue
from service.config import JOB_TIME_LIMIT_GRACE, get_settings
from workers import shutdown

log = logging.getLogger(__name__)

app = Celery("dendrite", include=["workers.tasks"])
app.conf.update(queue.celery_config(get_settings()))
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=False,
    # The job stops itself at its time limit; this kills a child stuck past it (the sweep then
    # fails the job with the time-limit reason).
    task_time_limit=get_settings().job_time_limit + JOB_TIME_LIMIT_GRACE,
    # A running job keeps training through a broker outage; the database records its outcome.
    worker_cancel_long_running_tasks_on_connection_loss=False,
    worker_prefetch_multiplier=1,
    worker_max_tasks_per_child=1,
    # A new pool process imports TensorFlow before it reports ready; on a busy machine that takes
    # longer than Celery's default 4 s, after which Celery kills it and starts the import again.
    worker_proc_alive_timeout=120,
    worker_enable_remote_control=not get_settings().embedded_broker,
    worker_hijack_root_logger=False,
    task_routes={"training.run_job": {"queue": queue.QUEUES["auto"]}},
)


@setup_logging.connect
def _configure_logging(loglevel: Any = None, **_: Any) -> None:
    """dendrite's logging (JSON lines, job ids) in place of Celery's, in the worker and its pool
    processes."""
    logs.configure(get_settings().log_format, loglevel or logging.INFO)


@worker_ready.connect
def _recover_orphans(sender: Any = None, **_: Any) -> None:
    """Jobs left `running` under this node name by its previous run lost their process: queue them
    again (or fail those out of attempts), and sweep once, as the API does."""
    from service import attempts
    from service.db import get_engine, session_scope

    with session_scope() as session:
        orphans = attempts.requeue_orphans(session, str(sender.hostname))
    with session_scope() as session:
        swept = attempts.sweep(session)
    get_engine().dispose()  # children must not share the parent's connections
    if orphans:
        log.warning("jobs this worker ran before it stopped: %s", orphans)
    if swept:
        log.warning("recovered jobs: %s", swept)


@worker_shutting_down.connect
def _hand_back_running_jobs(**_: Any) -> None:
    """Warm shutdown waits for running tasks: ask them to hand their jobs back at the next epoch
    boundary instead of training to the end. (Runs in a signal handler: no logging here.)"""
    shutdown.forward_to_pool()


@worker_process_init.connect
def _warm_child(**_: Any) -> None:
    from service.db import get_engine

    get_engine().dispose(close=False)
    queue.celery.cache_clear()  # nor the parent's broker connections
    started = time.perf_counter()
    import workers.training  # noqa: F401 - warm TensorFlow and Keras before the job arrives
    from workers import timings

    timings.import_seconds = time.perf_counter() - started
    with get_engine().connect():  # the job's claim finds a pooled connection (PostgreSQL) ready
        pass
