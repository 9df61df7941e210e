"""The lease: claims, epochs, rewinds, hand-backs and ends, against the real database and embedded
broker."""

from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from service import jobs, leases, recovery
from service.core import queue
from service.core.orm import EpochMetric, JobStatus
from tests import leasing


@pytest.fixture(autouse=True)
def broker() -> Iterator[None]:
    """Each test gets the embedded broker of its own data directory, empty."""
    queue.celery.cache_clear()
    yield
    queue.celery.cache_clear()


def test_claim_takes_a_queued_job_once(session: Session) -> None:
    job = leasing.submit(session)
    first = leases.claim(session, job.id, "w1@host")
    session.commit()
    second = leases.claim(session, job.id, "w2@host")  # a duplicate delivery
    session.commit()
    session.refresh(job)
    assert first is not None and first.number == 1 and second is None
    assert job.status == JobStatus.running and job.worker == "w1@host" and job.attempts == 1
    assert job.started_at is not None and job.heartbeat_at is not None


def test_claim_leaves_a_cancelled_job_alone(session: Session) -> None:
    job = leasing.submit(session)
    jobs.cancel(session, leasing.OWNER, job.id)
    session.commit()
    assert leases.claim(session, job.id, "w1@host") is None


def test_hand_back_requeues_without_using_an_attempt(session: Session) -> None:
    job = leasing.submit(session)
    attempt = leasing.claim(session, job)
    assert leases.hand_back(session, attempt)
    session.commit()
    session.refresh(job)
    assert job.status == JobStatus.queued and job.attempts == 0 and job.worker is None
    assert queue.waiting("training") == 2


def test_an_attempt_that_lost_its_job_changes_nothing(session: Session) -> None:
    job = leasing.submit(session)
    stale = leasing.claim(session, job, "w1@host")
    leasing.silence(session, job)
    recovery.recover_silent(session)  # the job goes back to the queue
    session.commit()
    current = leasing.claim(session, job, "w2@host")
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
    job = leasing.submit(session)
    attempt = leasing.claim(session, job)
    for epoch in (1, 2, 3, 2):  # epoch 2 written twice: the second one wins
        assert leases.record_epoch(session, attempt, epoch, {"loss": float(epoch)}, 0.1)
    session.commit()
    assert leases.rewind(session, attempt, 2)
    session.commit()
    session.expire_all()
    rows = session.scalars(select(EpochMetric).where(EpochMetric.job_id == job.id)).all()
    assert sorted(row.epoch for row in rows) == [1, 2]
    assert job.epoch == 2 and job.latest_metrics == {"loss": 2.0}
