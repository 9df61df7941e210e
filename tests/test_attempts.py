"""Claims, hand-backs and the recovery sweep, against the real database and embedded broker."""

import copy
import socket
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from service import datasets, jobs, keys, leases
from service.core import queue, storage
from service.core.config import get_settings
from service.core.orm import EpochMetric, Job, JobStatus, utcnow
from service.schemas import JobCreate, examples
from tests.conftest import DATA

OWNER = keys.Principal(owner="alice")


@pytest.fixture(autouse=True)
def broker() -> Iterator[None]:
    """Each test gets the embedded broker of its own data directory, empty."""
    queue.celery.cache_clear()
    yield
    queue.celery.cache_clear()


def _submit(session: Session, device: str = "auto") -> Job:
    with open(DATA / "concrete_data.csv", "rb") as handle:
        dataset = datasets.create(session, OWNER, handle, "concrete_data.csv", "text/csv", None)
    body = copy.deepcopy(examples.CONCRETE_REGRESSION)
    body.update(dataset_id=dataset.id, device=device)
    job = jobs.submit(session, OWNER, JobCreate.model_validate(body))
    session.commit()
    return job


def _claim(session: Session, job: Job, worker: str = "w1@host") -> leases.Attempt:
    attempt = leases.claim(session, job.id, worker)
    session.commit()
    assert attempt is not None
    return attempt


def _silence(session: Session, job: Job, seconds: float = 600) -> None:
    """The worker stopped sending heartbeats `seconds` ago."""
    session.refresh(job)
    job.heartbeat_at = utcnow() - timedelta(seconds=seconds)
    session.commit()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sweep(session: Session) -> leases.Swept:
    swept = leases.sweep(session)
    session.commit()
    session.expire_all()
    return swept


def test_submit_sends_the_job_and_records_when(session: Session) -> None:
    job = _submit(session)
    assert queue.waiting("training") == 1
    session.refresh(job)
    assert job.dispatched_at is not None and job.dispatched_at > utcnow() - timedelta(minutes=1)


def test_claim_takes_a_queued_job_once(session: Session) -> None:
    job = _submit(session)
    first = leases.claim(session, job.id, "w1@host")
    session.commit()
    second = leases.claim(session, job.id, "w2@host")  # a duplicate delivery
    session.commit()
    session.refresh(job)
    assert first is not None and first.number == 1 and second is None
    assert job.status == JobStatus.running and job.worker == "w1@host" and job.attempts == 1
    assert job.started_at is not None and job.heartbeat_at is not None


def test_claim_leaves_a_cancelled_job_alone(session: Session) -> None:
    job = _submit(session)
    jobs.cancel(session, OWNER, job.id)
    session.commit()
    assert leases.claim(session, job.id, "w1@host") is None


def test_sweep_requeues_a_silent_job_and_sends_it_again(session: Session) -> None:
    job, alive = _submit(session), _submit(session)
    first = _claim(session, job)
    _claim(session, alive)
    _silence(session, job)
    swept = _sweep(session)
    assert (swept.requeued, swept.failed) == (1, 0)
    assert job.status == JobStatus.queued and job.worker is None and job.attempts == 1
    assert alive.status == JobStatus.running
    assert queue.waiting("training") == 3  # two from the submits, one sent again
    again = _claim(session, job, "w2@host")
    assert again.number == 2 and again.started_at == first.started_at  # the time limit's start


def test_sweep_fails_a_job_whose_worker_stopped_max_attempts_times(session: Session) -> None:
    job = _submit(session)
    storage.write_stream(storage.checkpoint_key(job.id, "training_metadata.json"), [b"{}"], 10)
    for worker in ("w1@host", "w2@host", "w3@host"):
        _claim(session, job, worker)
        _silence(session, job)
        _sweep(session)
    assert job.status == JobStatus.failed and job.finished_at is not None
    assert job.error is not None
    assert "stopped 3 times" in job.error and "w3@host" in job.error and "UTC" in job.error
    assert storage.list_keys(f"checkpoints/{job.id}") == []


def test_sweep_is_a_no_op_the_second_time(session: Session) -> None:
    job = _submit(session)
    _claim(session, job)
    _silence(session, job)
    assert _sweep(session).requeued == 1
    assert not _sweep(session)
    assert queue.waiting("training") == 2


def test_sweep_cancels_a_silent_job_that_was_asked_to_stop(session: Session) -> None:
    job = _submit(session)
    _claim(session, job)
    jobs.cancel(session, OWNER, job.id)
    session.commit()
    _silence(session, job)
    _sweep(session)
    assert job.status == JobStatus.cancelled


def test_sweep_fails_a_silent_job_past_its_time_limit(session: Session) -> None:
    job = _submit(session)
    _claim(session, job)
    job.started_at = utcnow() - timedelta(hours=7)
    session.commit()
    _silence(session, job)
    _sweep(session)
    assert job.status == JobStatus.failed
    assert job.error is not None and "longer than the 21600 s limit" in job.error


def test_requeue_orphans_takes_only_this_workers_jobs(session: Session) -> None:
    mine, theirs = _submit(session), _submit(session)
    _claim(session, mine, "w1@host")
    _claim(session, theirs, "w2@host")
    swept = leases.requeue_orphans(session, "w1@host")
    session.commit()
    session.expire_all()
    assert swept.requeued == 1
    assert mine.status == JobStatus.queued and theirs.status == JobStatus.running


KILLED = "was killed (SIGKILL), most likely by the kernel's out-of-memory killer"


def test_requeue_lost_requeues_at_once_and_counts_the_attempt(session: Session) -> None:
    job = _submit(session)
    _claim(session, job, "w1@host")  # its heartbeat is fresh: the sweep would wait
    swept = leases.requeue_lost(session, job.id, "w1@host", KILLED)
    session.commit()
    session.expire_all()
    assert swept.requeued == 1
    assert job.status == JobStatus.queued and job.worker is None and job.attempts == 1
    assert queue.waiting("training") == 2  # the submit's and a fresh one
    assert _claim(session, job, "w2@host").number == 2


def test_requeue_lost_leaves_a_job_another_worker_holds(session: Session) -> None:
    job = _submit(session)
    _claim(session, job, "w2@host")
    assert not leases.requeue_lost(session, job.id, "w1@host", KILLED)
    session.commit()
    session.expire_all()
    assert job.status == JobStatus.running and job.worker == "w2@host"


def test_requeue_lost_fails_with_the_cause_once_out_of_attempts(session: Session) -> None:
    job = _submit(session)
    for worker in ("w1@host", "w2@host", "w3@host"):
        _claim(session, job, worker)
        leases.requeue_lost(session, job.id, worker, KILLED)
        session.commit()
    session.expire_all()
    assert job.status == JobStatus.failed and job.error is not None
    assert job.error.startswith("attempt 3 of 3 (DENDRITE_MAX_ATTEMPTS) ended")
    assert "on w3@host was killed (SIGKILL), most likely" in job.error


def test_resend_unclaimed_sends_a_queued_job_again(session: Session) -> None:
    job, running = _submit(session), _submit(session)
    _claim(session, running)
    assert leases.resend_unclaimed(session, job.id)
    assert not leases.resend_unclaimed(session, running.id)
    session.commit()
    assert queue.waiting("training") == 3


def test_sweep_sends_again_queued_jobs_the_broker_lost(session: Session) -> None:
    old, recent = _submit(session), _submit(session)
    old.dispatched_at = utcnow() - timedelta(minutes=5)
    session.commit()
    assert not _sweep(session)  # both messages are still in the queue
    with queue.celery().connection_for_write() as connection:
        connection.default_channel.queue_purge("training")  # what a broker restart does
    assert _sweep(session).redispatched == 1  # the recent one may still be on its way
    assert queue.waiting("training") == 1
    assert old.dispatched_at is not None and old.dispatched_at > utcnow() - timedelta(minutes=1)
    assert not _sweep(session)
    assert recent.status == JobStatus.queued


def test_sweep_requeues_while_the_broker_is_down(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    job, waiting = _submit(session), _submit(session)
    _claim(session, job)
    _silence(session, job)
    waiting.dispatched_at = utcnow() - timedelta(hours=1)
    session.commit()
    monkeypatch.setenv("DENDRITE_BROKER_URL", f"redis://127.0.0.1:{_closed_port()}/0")
    get_settings.cache_clear()
    queue.celery.cache_clear()
    started = time.monotonic()
    swept = _sweep(session)  # the message cannot go; the next sweep sends it once it can
    assert (swept.requeued, swept.redispatched) == (1, 0)
    assert job.status == JobStatus.queued
    assert time.monotonic() - started < 30


def test_sweep_does_not_send_again_jobs_waiting_behind_others(session: Session) -> None:
    waiting = [_submit(session) for _ in range(3)]
    for job in waiting:
        job.dispatched_at = utcnow() - timedelta(hours=1)
    session.commit()
    assert not _sweep(session)
    assert queue.waiting("training") == 3


def test_sweep_counts_each_queue_on_its_own(session: Session) -> None:
    cpu, gpu = _submit(session), _submit(session, device="gpu")
    for job in (cpu, gpu):
        job.dispatched_at = utcnow() - timedelta(hours=1)
    session.commit()
    with queue.celery().connection_for_write() as connection:
        connection.default_channel.queue_purge("training-gpu")
    assert _sweep(session).redispatched == 1
    assert (queue.waiting("training"), queue.waiting("training-gpu")) == (1, 1)


def test_hand_back_requeues_without_using_an_attempt(session: Session) -> None:
    job = _submit(session)
    attempt = _claim(session, job)
    assert leases.hand_back(session, attempt)
    session.commit()
    session.refresh(job)
    assert job.status == JobStatus.queued and job.attempts == 0 and job.worker is None
    assert queue.waiting("training") == 2


def test_an_attempt_that_lost_its_job_changes_nothing(session: Session) -> None:
    job = _submit(session)
    stale = _claim(session, job, "w1@host")
    _silence(session, job)
    _sweep(session)
    current = _claim(session, job, "w2@host")
    assert leases.record_epoch(session, current, 1, {"loss": 1.0}, 0.1)
    session.commit()
    assert not leases.touch(session, stale)
    assert not leases.record_epoch(session, stale, 2, {"loss": 9.0}, 0.1)
    assert not leases.hand_back(session, stale)
    assert not leases.end(session, stale, JobStatus.succeeded)
    session.commit()
    session.expire_all()
    assert job.status == JobStatus.running and job.worker == "w2@host" and job.epoch == 1
    assert [row.epoch for row in job.history] == [1]


def test_record_epoch_and_rewind_keep_each_epoch_once(session: Session) -> None:
    job = _submit(session)
    attempt = _claim(session, job)
    for epoch in (1, 2, 3, 2):  # epoch 2 written twice: the second one wins
        assert leases.record_epoch(session, attempt, epoch, {"loss": float(epoch)}, 0.1)
    session.commit()
    assert leases.rewind(session, attempt, 2)
    session.commit()
    session.expire_all()
    rows = session.scalars(select(EpochMetric).where(EpochMetric.job_id == job.id)).all()
    assert sorted(row.epoch for row in rows) == [1, 2]
    assert job.epoch == 2 and job.latest_metrics == {"loss": 2.0}
