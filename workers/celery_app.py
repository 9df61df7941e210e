"""The worker's Celery app. Jobs run in child processes, each reused for several jobs
(`DENDRITE_WORKER_JOBS_PER_PROCESS`); the parent never imports TensorFlow.

Running any TensorFlow op in the parent before the pool forks deadlocks every child, so the
child imports TensorFlow as it starts (`worker_process_init`): the next job finds it warm.

The job table, not the broker, decides what runs (`service.leases`): a task claims a job first,
so a duplicate or late delivery does nothing, and a job whose process is lost is requeued with a
fresh message, a bounded number of times, where a redelivered message would retry it forever
(`task_reject_on_worker_lost=False`). Lost jobs come back three ways:

- a pool process dies (out of memory, SIGKILL): the parent sees it at once (Celery reports a
  `WorkerLostError`, in the parent, through `task_failure`) and requeues the job that process
  held (`workers.holds`), counting the attempt; the message says why it died;
- the whole worker dies: its heartbeats stop and the API's recovery requeues the job after
  `stale_after` (16 s by default, checked every 4 s: `service.recovery`);
- it stops cleanly (SIGTERM): the job is handed back at the next epoch boundary.

So the broker's own redelivery is never needed, and with Redis it is harmful: a dead worker's
unacknowledged message stays in Redis' `unacked` hash until the visibility timeout (7 h, above
the longest job) and only then comes back, for a job finished long ago. With Redis, messages are
therefore acknowledged as a pool process starts the task (`task_acks_late=False`), and
`worker_disable_prefetch` keeps a busy worker from reserving the next message meanwhile, which
early acks would otherwise allow (it would sit unacknowledged in the busy worker while idle
workers wait). A worker that dies between reserving and starting a message (milliseconds) leaves
a queued job without a message, which recovery's count sends again (`redispatch_lost`).
Elsewhere acks stay late: the embedded broker keeps unacknowledged messages in the worker's
memory, RabbitMQ returns them when the connection drops, and neither can stop prefetching.
"""

import gc
import logging
import time
from typing import Any

from billiard.exceptions import WorkerLostError
from celery import Celery
from celery.exceptions import TimeLimitExceeded
from celery.signals import (
    setup_logging,
    task_failure,
    worker_init,
    worker_process_init,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)

from service.core import logs, queue
from service.core.config import JOB_TIME_LIMIT_GRACE, get_settings
from workers import holds, memory, shutdown

log = logging.getLogger(__name__)

REDIS_SCHEMES = ("redis", "rediss", "sentinel")
acks_early = get_settings().celery_broker_url.split("://", 1)[0] in REDIS_SCHEMES

app = Celery("dendrite", include=["workers.tasks"])
app.conf.update(queue.celery_config(get_settings()))
app.conf.update(
    task_acks_late=not acks_early,
    worker_disable_prefetch=acks_early,
    task_reject_on_worker_lost=False,
    # The job stops itself at its time limit; this kills a child stuck past it (its worker then
    # fails the job with the time-limit reason).
    task_time_limit=get_settings().job_time_limit + JOB_TIME_LIMIT_GRACE,
    # A running job keeps training through a broker outage; the database records its outcome.
    worker_cancel_long_running_tasks_on_connection_loss=False,
    worker_prefetch_multiplier=1,
    # A pool process runs several jobs (TensorFlow imported once, Keras cleared between jobs:
    # `workers.tasks`), and is replaced after that many or once it has grown past the setting.
    worker_max_tasks_per_child=get_settings().worker_jobs_per_process,
    worker_max_memory_per_child=get_settings().worker_recycle_memory_mb * 1024,  # KiB
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


@worker_init.connect
def _before_the_pool_starts(sender: Any = None, **_: Any) -> None:
    global _oom_kills
    holds.create()
    memory.concurrency = int(getattr(sender, "concurrency", 1) or 1)
    _oom_kills = memory.oom_kills()


@worker_shutdown.connect
def _remove_holds(**_: Any) -> None:
    holds.remove()


_oom_kills: int | None = None  # the cgroup's count of out-of-memory kills, last seen


@task_failure.connect
def requeue_lost_jobs(
    sender: Any = None, exception: BaseException | None = None, args: Any = None, **_: Any
) -> None:
    """In the parent, as soon as a pool process running a task is gone: requeue the job it held
    (or fail it, out of attempts) while this worker still holds it. Failures inside a job are
    the child's to record; this sees only the process' death."""
    if not isinstance(exception, WorkerLostError | TimeLimitExceeded):
        return
    from service import recovery
    from service.core.db import get_engine, session_scope

    cause = _cause_of_death(exception)
    node = str(getattr(sender.request, "hostname", None) or "")
    try:
        lost = holds.lost()
        with session_scope() as session:
            for job_id in lost:
                recovery.requeue_lost(session, job_id, node, cause)
            if not lost and args:  # it died before claiming: its message is gone
                recovery.resend_unclaimed(session, str(args[0]))
        get_engine().dispose()  # the next pool process must not share this connection
    except Exception:  # recovery finds the job later, once its heartbeat is stale
        log.exception("could not requeue the job of a pool process that %s", cause)


def _cause_of_death(exception: BaseException) -> str:
    """How the process died, in words for the job's error."""
    global _oom_kills
    if isinstance(exception, TimeLimitExceeded):
        return "was stopped at its hard time limit"
    seen, _oom_kills = _oom_kills, memory.oom_kills()
    if seen is not None and _oom_kills is not None and _oom_kills > seen:
        return (
            "was ended by the kernel's out-of-memory killer: the job needs more memory than the "
            "worker has. Try a smaller batch_size or network, or give the workers more memory"
        )
    if "SIGKILL" in str(exception):
        return (
            "was killed (SIGKILL), most likely by the kernel's out-of-memory killer: the job "
            "needed more memory than the worker had. Try a smaller batch_size or network, or "
            "give the workers more memory (see DENDRITE_WORKER_MAX_MEMORY_MB)"
        )
    return f"exited unexpectedly ({exception})"


@worker_ready.connect
def _recover_orphans(sender: Any = None, **_: Any) -> None:
    """Jobs left `running` under this node name by its previous run lost their process: queue them
    again (or fail those out of attempts), and recover silent jobs once, as the API does."""
    from service import recovery
    from service.core.db import get_engine, session_scope

    with session_scope() as session:
        orphans = recovery.requeue_orphans(session, str(sender.hostname))
    with session_scope() as session:
        recovered = recovery.recover_silent(session)
    get_engine().dispose()  # children must not share the parent's connections
    if orphans:
        log.warning("jobs this worker ran before it stopped: %s", orphans)
    if recovered:
        log.warning("recovered jobs: %s", recovered)


@worker_shutting_down.connect
def _hand_back_running_jobs(**_: Any) -> None:
    """Warm shutdown waits for running tasks: ask them to hand their jobs back at the next epoch
    boundary instead of training to the end. (Runs in a signal handler: no logging here.)"""
    shutdown.forward_to_pool()


@worker_process_init.connect
def _warm_child(**_: Any) -> None:
    from service.core.db import get_engine

    get_engine().dispose(close=False)
    queue.celery.cache_clear()  # nor the parent's broker connections
    started = time.perf_counter()
    import workers.training  # noqa: F401 - warm TensorFlow and Keras before the job arrives
    from workers import timings

    timings.import_seconds = time.perf_counter() - started
    # What the imports made lives as long as the process: out of the collector's sight, a full
    # collection (between jobs: `workers.training.release`) takes milliseconds, not ~0.2 s.
    gc.freeze()
    with get_engine().connect():  # the job's claim finds a pooled connection (PostgreSQL) ready
        pass
