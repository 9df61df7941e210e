"""The memory ceiling of a training process: the watchdog fails the job, saying why."""

import copy
import threading
from typing import Any

import pytest
from sqlalchemy.orm import Session

from service import datasets, jobs, keys, leases
from service.core import queue
from service.core.config import Settings, get_settings
from service.core.orm import Job, JobStatus
from service.leases import Attempt
from service.schemas import examples
from service.schemas.jobs import JobCreate
from tests.conftest import DATA
from workers import memory

OWNER = keys.Principal(owner="alice")
MIB = 1 << 20


def _claimed(session: Session) -> tuple[Job, Attempt]:
    queue.celery.cache_clear()
    with open(DATA / "concrete_data.csv", "rb") as handle:
        dataset = datasets.create(session, OWNER, handle, "concrete_data.csv", "text/csv", None)
    body = copy.deepcopy(examples.CONCRETE_REGRESSION)
    body["dataset_id"] = dataset.id
    job = jobs.submit(session, OWNER, JobCreate.model_validate(body))
    session.commit()
    attempt = leases.claim(session, job.id, "w1@host")
    session.commit()
    assert attempt is not None
    return job, attempt


class Contained(memory.Watchdog):
    """Ends nothing: records that it would have ended the process."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ended = threading.Event()

    def end_process(self) -> None:
        self.ended.set()


def test_job_past_the_ceiling_fails_saying_so(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DENDRITE_WORKER_MAX_MEMORY_MB", "64")  # below any Python with numpy
    get_settings.cache_clear()
    job, attempt = _claimed(session)
    limit = memory.ceiling_bytes()
    assert limit == 64 * MIB
    watchdog = Contained(attempt, limit, interval=0.01)
    watchdog.start()
    assert watchdog.ended.wait(timeout=10)
    watchdog.join(timeout=10)
    session.expire_all()
    assert job.status == JobStatus.failed and job.error is not None
    assert job.error.startswith("the job used more than 64 MiB of memory")
    assert "DENDRITE_WORKER_MAX_MEMORY_MB" in job.error and "batch_size" in job.error


def test_job_under_the_ceiling_runs_on(session: Session) -> None:
    job, attempt = _claimed(session)
    watchdog = Contained(attempt, memory.resident_bytes() + (1 << 30), interval=0.01)
    watchdog.start()
    watchdog.stop()
    assert not watchdog.ended.is_set()
    session.expire_all()
    assert job.status == JobStatus.running


def test_ceiling_is_the_setting_or_a_share_of_the_memory(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    assert settings.worker_max_memory_mb is None
    available = memory.available_bytes()
    assert available is not None and available > 0
    monkeypatch.setattr(memory, "concurrency", 2)
    assert memory.ceiling_bytes() == int(available * 0.9 / 2)
    monkeypatch.setenv("DENDRITE_WORKER_MAX_MEMORY_MB", "0")
    get_settings.cache_clear()
    assert memory.ceiling_bytes() is None
