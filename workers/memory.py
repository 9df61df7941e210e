"""The memory ceiling of a training process, and telling an out-of-memory death from others.

Celery's `worker_max_memory_per_child` only replaces a pool process after its task ends, which is
too late for a job whose first batch needs more than the machine has. So while a job runs, a
watchdog thread reads the process' resident memory a few times a second; past the ceiling it
fails the job with a message saying why, then ends the process (training cannot be interrupted
inside a TensorFlow call). A process the kernel's out-of-memory killer ends first is reported by
the worker's main process (`workers.celery_app`), which can only see that it died by SIGKILL.
"""

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from service.core.config import get_settings
from service.core.db import session_scope
from service.core.orm import JobStatus
from service.leases import Attempt
from workers import attempts

log = logging.getLogger(__name__)

CHECK_INTERVAL = 0.25  # seconds; reading /proc/self/statm costs microseconds
AUTO_SHARE = 0.9  # of the memory the machine or container allows, when no ceiling is set
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
MIB = 1 << 20

concurrency = 1  # jobs this worker runs at once; set in the main process before the pool forks


def resident_bytes() -> int:
    """This process' resident set size."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE_SIZE


def available_bytes() -> int | None:
    """The memory this machine, or its container's cgroup, allows; None if unknown."""
    limits: list[int] = []
    with contextlib.suppress(ValueError, OSError):
        limits.append(os.sysconf("SC_PHYS_PAGES") * PAGE_SIZE)
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with contextlib.suppress(OSError, ValueError):  # absent, or "max": no limit there
            limits.append(int(Path(path).read_text().strip()))
    return min(limits) if limits else None


def ceiling_bytes() -> int | None:
    """DENDRITE_WORKER_MAX_MEMORY_MB, else an equal share of 90% of the available memory per
    concurrent job; None when set to 0 (no ceiling)."""
    setting = get_settings().worker_max_memory_mb
    if setting is not None:
        return setting * MIB if setting > 0 else None
    available = available_bytes()
    return int(available * AUTO_SHARE / max(concurrency, 1)) if available else None


def exceeded_error(limit: int, used: int) -> str:
    if get_settings().worker_max_memory_mb is not None:
        source = "DENDRITE_WORKER_MAX_MEMORY_MB"
    else:
        source = f"{AUTO_SHARE:.0%} of the worker's memory; DENDRITE_WORKER_MAX_MEMORY_MB sets it"
    return (
        f"the job used more than {limit // MIB} MiB of memory ({source}): it had reached "
        f"{used // MIB} MiB and was stopped. Try a smaller batch_size, fewer units or filters, "
        "or smaller inputs, or run it on a worker with more memory"
    )


def oom_kills() -> int | None:
    """How many processes the kernel's out-of-memory killer has ended in this cgroup (v2)."""
    try:
        for line in Path("/sys/fs/cgroup/memory.events").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        pass
    return None


@contextlib.contextmanager
def ceiling(attempt: Attempt) -> Iterator[None]:
    """While inside, the attempt's job fails once this process outgrows the ceiling."""
    limit = ceiling_bytes()
    if limit is None:
        yield
        return
    watchdog = Watchdog(attempt, limit)
    watchdog.start()
    try:
        yield
    finally:
        watchdog.stop()


class Watchdog(threading.Thread):
    """Fails the attempt's job and ends this process once it holds more than `limit` bytes."""

    def __init__(self, attempt: Attempt, limit: int, interval: float = CHECK_INTERVAL) -> None:
        super().__init__(name=f"memory-{attempt.job_id}", daemon=True)
        self.attempt, self.limit, self.interval = attempt, limit, interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            used = resident_bytes()
            if used > self.limit:
                self.fail(used)
                return

    def fail(self, used: int) -> None:
        error = exceeded_error(self.limit, used)
        log.error("job %s: %s", self.attempt.job_id, error)
        try:
            with session_scope() as session:
                attempts.end(session, self.attempt, JobStatus.failed, error)
        finally:
            self.end_process()

    def end_process(self) -> None:
        # Memory is still growing inside a TensorFlow call that nothing can interrupt: end the
        # process now. Its parent finds the job ended and replaces the process.
        os.kill(os.getpid(), signal.SIGKILL)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=self.interval + 5)
