"""The worker's main process: it requeues at once the job of a pool process that died, and it
never imports TensorFlow."""

import copy
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from billiard.exceptions import WorkerLostError
from sqlalchemy.orm import Session

from service import datasets, jobs, keys, leases
from service.core import queue
from service.core.config import get_settings
from service.core.orm import Job, JobStatus
from service.schemas import examples
from service.schemas.jobs import JobCreate
from tests.conftest import DATA
from workers import celery_app, holds

OWNER = keys.Principal(owner="alice")
SIGKILLED = WorkerLostError("Worker exited prematurely: signal 9 (SIGKILL) Job: 0.")


def _submit(session: Session) -> Job:
    queue.celery.cache_clear()
    with open(DATA / "concrete_data.csv", "rb") as handle:
        dataset = datasets.create(session, OWNER, handle, "concrete_data.csv", "text/csv", None)
    body = copy.deepcopy(examples.CONCRETE_REGRESSION)
    body["dataset_id"] = dataset.id
    job = jobs.submit(session, OWNER, JobCreate.model_validate(body))
    session.commit()
    return job


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _lost(job_id: str, exception: BaseException = SIGKILLED) -> None:
    """What Celery does in the main process when the pool process running `job_id` is gone."""
    sender = SimpleNamespace(request=SimpleNamespace(hostname="w1@host"))
    celery_app.requeue_lost_jobs(sender=sender, exception=exception, args=[job_id])


@pytest.fixture(autouse=True)
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(holds, "folder", tmp_path)
    return tmp_path


def test_job_of_a_killed_pool_process_is_requeued_at_once(session: Session, folder: Path) -> None:
    job = _submit(session)
    assert leases.claim(session, job.id, "w1@host") is not None
    session.commit()
    (folder / str(_dead_pid())).write_text(job.id)
    _lost(job.id)
    session.expire_all()
    assert job.status == JobStatus.queued and job.attempts == 1
    assert queue.waiting("training") == 2  # the submit's and a fresh one


def test_killed_on_its_last_attempt_the_job_fails_saying_memory(
    session: Session, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DENDRITE_MAX_ATTEMPTS", "1")
    get_settings.cache_clear()
    job = _submit(session)
    assert leases.claim(session, job.id, "w1@host") is not None
    session.commit()
    (folder / str(_dead_pid())).write_text(job.id)
    _lost(job.id)
    session.expire_all()
    assert job.status == JobStatus.failed and job.error is not None
    assert "killed (SIGKILL), most likely by the kernel's out-of-memory killer" in job.error


def test_a_job_that_failed_in_its_process_is_left_alone(session: Session, folder: Path) -> None:
    job = _submit(session)
    assert leases.claim(session, job.id, "w1@host") is not None
    session.commit()
    (folder / str(_dead_pid())).write_text(job.id)
    _lost(job.id, ValueError("raised by the task itself, in its process"))
    session.expire_all()
    assert job.status == JobStatus.running


def test_a_process_that_died_before_claiming_gets_its_job_sent_again(session: Session) -> None:
    job = _submit(session)
    _lost(job.id)
    session.expire_all()
    assert job.status == JobStatus.queued
    assert queue.waiting("training") == 2


def test_the_main_process_never_imports_tensorflow() -> None:
    code = "import sys, workers.celery_app; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
