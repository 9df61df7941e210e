"""Recovery of lost jobs: silent workers, dead processes, lost messages, against the real
database and embedded broker."""

import socket
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from service import jobs, recovery
from service.core import queue, storage
from service.core.config import get_settings
from service.core.orm import JobStatus, utcnow
from tests import leasing


@pytest.fixture(autouse=True)
def broker() -> Iterator[None]:
    """Each test gets the embedded broker of its own data directory, empty."""
    queue.celery.cache_clear()
    yield
    queue.celery.cache_clear()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _recover(session: Session) -> recovery.Recovered:
    recovered = recovery.recover_silent(session)
    session.commit()
    session.expire_all()
    return recovered


def test_submit_sends_the_job_and_records_when(session: Session) -> None:
    job = leasing.submit(session)
    assert queue.waiting("training") == 1
    session.refresh(job)
    assert job.dispatched_at is not None and job.dispatched_at > utcnow() - timedelta(minutes=1)


def test_recover_silent_requeues_a_silent_job_and_sends_it_again(session: Session) -> None:
    job, alive = leasing.submit(session), leasing.submit(session)
    first = leasing.claim(session, job)
    leasing.claim(session, alive)
    leasing.silence(session, job)
    recovered = _recover(session)
    assert (recovered.requeued, recovered.failed) == (1, 0)
    assert job.status == JobStatus.queued and job.worker is None and job.attempts == 1
    assert alive.status == JobStatus.running
    assert queue.waiting("training") == 3  # two from the submits, one sent again
    again = leasing.claim(session, job, "w2@host")
    assert again.number == 2 and again.started_at == first.started_at  # the time limit's start


def test_recover_silent_fails_a_job_whose_worker_went_silent_max_attempts_times(
    session: Session,
) -> None:
    job = leasing.submit(session)
    storage.write_stream(storage.checkpoint_key(job.id, "training_metadata.json"), [b"{}"], 10)
    for worker in ("w1@host", "w2@host", "w3@host"):
        leasing.claim(session, job, worker)
        leasing.silence(session, job)
        _recover(session)
    assert job.status == JobStatus.failed and job.finished_at is not None
    assert job.error is not None
    assert "stopped 3 times" in job.error and "w3@host" in job.error and "UTC" in job.error
    assert storage.list_keys(f"checkpoints/{job.id}") == []


def test_recover_silent_is_a_no_op_the_second_time(session: Session) -> None:
    job = leasing.submit(session)
    leasing.claim(session, job)
    leasing.silence(session, job)
    assert _recover(session).requeued == 1
    assert not _recover(session)
    assert queue.waiting("training") == 2


def test_recover_silent_cancels_a_silent_job_that_was_asked_to_stop(session: Session) -> None:
    job = leasing.submit(session)
    leasing.claim(session, job)
    jobs.cancel(session, leasing.OWNER, job.id)
    session.commit()
    leasing.silence(session, job)
    _recover(session)
    assert job.status == JobStatus.cancelled


def test_recover_silent_fails_a_silent_job_past_its_time_limit(session: Session) -> None:
    job = leasing.submit(session)
    leasing.claim(session, job)
    job.started_at = utcnow() - timedelta(hours=7)
    session.commit()
    leasing.silence(session, job)
    _recover(session)
    assert job.status == JobStatus.failed
    assert job.error is not None and "longer than the 21600 s limit" in job.error


def test_requeue_orphans_takes_only_this_workers_jobs(session: Session) -> None:
    mine, theirs = leasing.submit(session), leasing.submit(session)
    leasing.claim(session, mine, "w1@host")
    leasing.claim(session, theirs, "w2@host")
    recovered = recovery.requeue_orphans(session, "w1@host")
    session.commit()
    session.expire_all()
    assert recovered.requeued == 1
    assert mine.status == JobStatus.queued and theirs.status == JobStatus.running


KILLED = "was killed (SIGKILL), most likely by the kernel's out-of-memory killer"


def test_requeue_lost_requeues_at_once_and_counts_the_attempt(session: Session) -> None:
    job = leasing.submit(session)
    leasing.claim(session, job, "w1@host")  # its heartbeat is fresh: recover_silent would wait
    recovered = recovery.requeue_lost(session, job.id, "w1@host", KILLED)
    session.commit()
    session.expire_all()
    assert recovered.requeued == 1
    assert job.status == JobStatus.queued and job.worker is None and job.attempts == 1
    assert queue.waiting("training") == 2  # the submit's and a fresh one
    assert leasing.claim(session, job, "w2@host").number == 2


def test_requeue_lost_leaves_a_job_another_worker_holds(session: Session) -> None:
    job = leasing.submit(session)
    leasing.claim(session, job, "w2@host")
    assert not recovery.requeue_lost(session, job.id, "w1@host", KILLED)
    session.commit()
    session.expire_all()
    assert job.status == JobStatus.running and job.worker == "w2@host"


def test_requeue_lost_fails_with_the_cause_once_out_of_attempts(session: Session) -> None:
    job = leasing.submit(session)
    for worker in ("w1@host", "w2@host", "w3@host"):
        leasing.claim(session, job, worker)
        recovery.requeue_lost(session, job.id, worker, KILLED)
        session.commit()
    session.expire_all()
    assert job.status == JobStatus.failed and job.error is not None
    assert job.error.startswith("attempt 3 of 3 (DENDRITE_MAX_ATTEMPTS) ended")
    assert "on w3@host was killed (SIGKILL), most likely" in job.error


def test_resend_unclaimed_sends_a_queued_job_again(session: Session) -> None:
    job, running = leasing.submit(session), leasing.submit(session)
    leasing.claim(session, running)
    assert recovery.resend_unclaimed(session, job.id)
    assert not recovery.resend_unclaimed(session, running.id)
    session.commit()
    assert queue.waiting("training") == 3


def test_recover_silent_sends_again_queued_jobs_the_broker_lost(session: Session) -> None:
    old, recent = leasing.submit(session), leasing.submit(session)
    old.dispatched_at = utcnow() - timedelta(minutes=5)
    session.commit()
    assert not _recover(session)  # both messages are still in the queue
    with queue.celery().connection_for_write() as connection:
        connection.default_channel.queue_purge("training")  # what a broker restart does
    assert _recover(session).redispatched == 1  # the recent one may still be on its way
    assert queue.waiting("training") == 1
    assert old.dispatched_at is not None and old.dispatched_at > utcnow() - timedelta(minutes=1)
    assert not _recover(session)
    assert recent.status == JobStatus.queued


def test_recover_silent_requeues_while_the_broker_is_down(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    job, waiting = leasing.submit(session), leasing.submit(session)
    leasing.claim(session, job)
    leasing.silence(session, job)
    waiting.dispatched_at = utcnow() - timedelta(hours=1)
    session.commit()
    monkeypatch.setenv("DENDRITE_BROKER_URL", f"redis://127.0.0.1:{_closed_port()}/0")
    get_settings.cache_clear()
    queue.celery.cache_clear()
    started = time.monotonic()
    recovered = _recover(session)  # the message cannot go; the next recovery sends it once it can
    assert (recovered.requeued, recovered.redispatched) == (1, 0)
    assert job.status == JobStatus.queued
    assert time.monotonic() - started < 30


def test_recover_silent_does_not_send_again_jobs_waiting_behind_others(session: Session) -> None:
    waiting = [leasing.submit(session) for _ in range(3)]
    for job in waiting:
        job.dispatched_at = utcnow() - timedelta(hours=1)
    session.commit()
    assert not _recover(session)
    assert queue.waiting("training") == 3


def test_recover_silent_counts_each_queue_on_its_own(session: Session) -> None:
    cpu, gpu = leasing.submit(session), leasing.submit(session, device="gpu")
    for job in (cpu, gpu):
        job.dispatched_at = utcnow() - timedelta(hours=1)
    session.commit()
    with queue.celery().connection_for_write() as connection:
        connection.default_channel.queue_purge("training-gpu")
    assert _recover(session).redispatched == 1
    assert (queue.waiting("training"), queue.waiting("training-gpu")) == (1, 1)
