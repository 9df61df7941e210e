"""SIGTERM hands a running job back instead of holding it until it ends.

Celery's warm shutdown waits for running tasks and does not signal its pool processes, so the
parent forwards SIGTERM to the processes running a task. There (or when the whole process group
gets SIGTERM) the signal only sets `requested` while a job runs: training stops at the next epoch
boundary, checkpoints, and the job goes back to the queue. Outside a job, billiard's own handler
ends the process as usual. (billiard installs that handler after `worker_process_init`, so ours is
installed around each job, not at process start.)
"""

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

requested = threading.Event()


@contextmanager
def running_job() -> Iterator[None]:
    """While inside, SIGTERM to this process asks for a hand-back instead of ending it. (Only a
    main thread can take signals: under a thread pool, jobs are not handed back.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    requested.set()


def forward_to_pool() -> None:
    """In the worker's main process, as its shutdown begins: signal the processes running tasks."""
    from celery.worker import state

    for request in list(state.active_requests):
        pid = request.worker_pid
        if pid and pid != os.getpid():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
