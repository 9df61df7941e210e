"""Training that stops part-way and resumes: hand-back, checkpoints, history, the time limit.

The training runs for real, in this process; a hand-back is asked for the way SIGTERM asks for it
(`workers.shutdown.requested`).
"""

import copy
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from service import datasets, jobs, keys, leases, recovery
from service.core import queue, storage
from service.core.config import get_settings
from service.core.orm import EpochMetric, Job, JobStatus, utcnow
from service.schemas import examples
from service.schemas.jobs import JobCreate
from tests.conftest import DATA
from workers import shutdown
from workers.callbacks import Checkpoint, Stop
from workers.tasks import run_job

OWNER = keys.Principal(owner="alice")


@pytest.fixture(autouse=True)
def clean_state() -> Iterator[None]:
    queue.celery.cache_clear()
    shutdown.requested.clear()
    yield
    shutdown.requested.clear()
    queue.celery.cache_clear()


def _submit(session: Session, epochs: int) -> Job:
    with open(DATA / "concrete_data.csv", "rb") as handle:
        dataset = datasets.create(session, OWNER, handle, "concrete_data.csv", "text/csv", None)
    body = copy.deepcopy(examples.CONCRETE_REGRESSION)
    body["dataset_id"] = dataset.id
    body["training"]["epochs"] = epochs
    job = jobs.submit(session, OWNER, JobCreate.model_validate(body))
    session.commit()
    return job


def _hand_back_after(monkeypatch: pytest.MonkeyPatch, epoch: int) -> None:
    """Ask for a hand-back (as SIGTERM does) once `epoch` is recorded."""
    record = leases.record_epoch

    def record_then_ask(*args: Any, **kwargs: Any) -> bool:
        recorded = record(*args, **kwargs)
        if args[2] == epoch:
            shutdown.requested.set()
        return recorded

    monkeypatch.setattr(leases, "record_epoch", record_then_ask)


def _history(session: Session, job: Job) -> list[tuple[int, float]]:
    session.expire_all()
    return [(row.epoch, row.metrics["loss"]) for row in job.history]


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> str:
    """The artifact store: a local directory, or S3 (moto's server), where the checkpoint of a
    job handed back is all the next attempt finds."""
    if request.param == "s3":
        request.getfixturevalue("s3_store")
    return str(request.param)


def test_handed_back_job_resumes_after_its_checkpoint(
    session: Session, monkeypatch: pytest.MonkeyPatch, store: str
) -> None:
    # A message runs its owner's oldest queued job (fair share), so the baseline goes first.
    uninterrupted, job = _submit(session, epochs=6), _submit(session, epochs=6)
    run_job(uninterrupted.id)
    with monkeypatch.context() as patch:
        _hand_back_after(patch, 3)
        run_job(job.id)
    session.refresh(job)
    assert job.status == JobStatus.queued and job.attempts == 0 and job.worker is None
    assert [epoch for epoch, _ in _history(session, job)] == [1, 2, 3]
    with storage.checkpoint_folder(job.id) as folder:  # from S3: as another machine sees it
        assert Checkpoint(job.id, folder, 0, Stop(utcnow())).saved_epoch() == 3
    # A worker that died after the checkpoint had written epochs the next attempt trains again.
    session.add(EpochMetric(job_id=job.id, epoch=4, metrics={"loss": -1.0}, seconds=0))
    session.commit()

    shutdown.requested.clear()
    run_job(job.id)
    session.refresh(job)
    assert job.status == JobStatus.succeeded, job.error
    assert job.epoch == 6 and job.attempts == 1
    resumed, expected = _history(session, job), _history(session, uninterrupted)
    assert [epoch for epoch, _ in resumed] == [1, 2, 3, 4, 5, 6]
    # Same seed: the resumed epochs see the same data order and state as an uninterrupted run.
    assert [loss for _, loss in resumed] == pytest.approx([loss for _, loss in expected], rel=1e-6)
    assert storage.list_keys(f"checkpoints/{job.id}") == []


def test_job_requeued_without_a_checkpoint_trains_from_the_start(session: Session) -> None:
    job = _submit(session, epochs=3)
    lost = leases.claim(session, job.id, "w1@host")
    assert lost is not None
    for epoch in (1, 2):
        leases.record_epoch(session, lost, epoch, {"loss": -1.0}, 0.1)
    job.heartbeat_at = utcnow() - timedelta(hours=1)
    session.commit()
    assert recovery.recover_silent(session).requeued == 1
    session.commit()
    run_job(job.id)
    session.refresh(job)
    assert job.status == JobStatus.succeeded and job.attempts == 2
    history = _history(session, job)
    assert [epoch for epoch, _ in history] == [1, 2, 3]
    assert all(loss > 0 for _, loss in history)


def test_job_past_its_time_limit_fails_with_that_reason(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DENDRITE_JOB_TIME_LIMIT", "1")
    get_settings.cache_clear()
    job = _submit(session, epochs=10_000)
    run_job(job.id)
    session.refresh(job)
    assert job.status == JobStatus.failed
    assert job.error is not None and "longer than the 1 s limit" in job.error
    assert 0 < job.epoch < 10_000
    assert storage.list_keys(f"checkpoints/{job.id}") == []


def test_job_that_comes_back_after_its_time_ran_out_does_not_train(session: Session) -> None:
    job = _submit(session, epochs=3)
    job.started_at = utcnow() - timedelta(days=1)  # an earlier attempt started it
    session.commit()
    run_job(job.id)
    session.refresh(job)
    assert job.status == JobStatus.failed and job.epoch == 0
    assert job.error is not None and "limit" in job.error


def test_duplicate_delivery_leaves_the_running_job_alone(session: Session) -> None:
    job = _submit(session, epochs=3)
    assert leases.claim(session, job.id, "w1@host") is not None
    session.commit()
    run_job(job.id)
    session.refresh(job)
    assert job.status == JobStatus.running and job.worker == "w1@host" and job.attempts == 1
    assert _history(session, job) == []


def test_a_fixed_seed_gives_the_same_history_on_cpu(session: Session) -> None:
    first, second = _submit(session, epochs=4), _submit(session, epochs=4)
    run_job(first.id)
    run_job(second.id)
    session.expire_all()

    def metrics(job: Job) -> list[dict[str, float]]:
        return [row.metrics for row in job.history]

    assert first.request["training"]["seed"] == second.request["training"]["seed"] == 42
    assert len(metrics(first)) == 4
    assert metrics(first) == metrics(second)  # every metric, every epoch, exactly
