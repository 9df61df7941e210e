"""Which job each pool process of this worker holds, so that the main process can requeue the job
of one that dies at once instead of waiting for its heartbeat to go stale.

A message does not say which job its process claims (fair share may run another owner's job:
`service.core.queue.fairest`), so a pool process writes the id of the job it holds to a file named
after its pid, in a folder the main process creates before the pool forks, and removes it when
the job ends. A file whose process is gone names a lost job.
"""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

folder: Path | None = None  # set in the main process before the pool forks; None: not a worker


def create() -> None:
    """In the worker's main process, before its pool starts."""
    global folder
    folder = Path(tempfile.mkdtemp(prefix="dendrite-worker-"))


def remove() -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def holding(job_id: str) -> Iterator[None]:
    """In a pool process, while it holds `job_id`."""
    if folder is None:  # a job run outside a worker (tests, tools)
        yield
        return
    path = folder / str(os.getpid())
    staging = path.with_suffix(".part")
    staging.write_text(job_id)
    os.replace(staging, path)  # never a half-written id
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def lost() -> list[str]:
    """In the main process: the jobs held by pool processes that no longer exist (each reported
    once)."""
    if folder is None:
        return []
    jobs = []
    for path in folder.iterdir():
        if not path.name.isdigit() or _alive(int(path.name)):
            continue
        with contextlib.suppress(OSError):
            jobs.append(path.read_text())
            path.unlink()
    return jobs


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A dead child that was not reaped yet still answers; its state says it is a zombie.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")
