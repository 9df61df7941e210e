"""Fair share: the job a message claims is the fairest queued job of its queue, not necessarily
its own (`service.leases.claim_next`, `service.core.queue.fairest`), on the test database (SQLite,
or PostgreSQL when DENDRITE_TEST_DATABASE_URL names one).

Jobs are written as rows with chosen times; a message is `workers.attempts.claim` (`claim_next`,
then a repeated job follows its part) with the id of the job it was sent for, as a worker's task
takes it.
"""

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.core.db import get_sessionmaker
from service.core.orm import Dataset, Job, JobStatus, utcnow
from workers import attempts

START = utcnow() - timedelta(hours=1)


def _at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def _job(
    session: Session, owner: str, minute: float, device: str = "auto", **values: object
) -> Job:
    """A job `owner` submitted `minute` minutes after START (queued unless `values` say)."""
    dataset = session.scalar(select(Dataset).where(Dataset.owner == owner))
    if dataset is None:
        dataset = Dataset(
            owner=owner, name="d.csv", format="csv", size_bytes=1, sha256="0" * 64, rows=1,
            columns=[], storage_key="datasets/d",
        )  # fmt: skip
        session.add(dataset)
        session.flush()
    job = Job(
        owner=owner,
        dataset_id=dataset.id,
        task="regression",
        request={},
        device=device,
        epochs=1,
        created_at=_at(minute),
        dispatched_at=_at(minute),
        **values,
    )
    session.add(job)
    session.commit()
    return job


def _ran(session: Session, owner: str, minute: float, ended: float | None = None) -> Job:
    """A job of `owner` that started at `minute` and is running, or `ended` at that minute."""
    if ended is None:
        return _job(session, owner, minute, status=JobStatus.running, started_at=_at(minute),
                    worker="w0@host", heartbeat_at=utcnow(), attempts=1)  # fmt: skip
    return _job(session, owner, minute, status=JobStatus.succeeded, started_at=_at(minute),
                finished_at=_at(ended), attempts=1)  # fmt: skip


def _take(session: Session, message_for: Job, worker: str = "w1@host") -> str | None:
    attempt = attempts.claim(session, message_for.id, worker)
    session.commit()
    return None if attempt is None else attempt.job_id


def test_newcomer_runs_before_the_backlog_of_an_owner_with_a_running_job(
    session: Session,
) -> None:
    _ran(session, "alice", 0)
    backlog = [_job(session, "alice", minute) for minute in (1, 2, 3)]
    newcomer = _job(session, "bob", 4)

    # The broker hands out alice's messages first (FIFO); the first one runs bob's job.
    assert _take(session, backlog[0]) == newcomer.id
    assert [_take(session, job) for job in backlog] == [job.id for job in backlog]


def test_newcomer_runs_next_when_the_running_job_ends_first(session: Session) -> None:
    """One worker: alice's job ended before the next message is taken, so neither owner has one
    running; bob has waited since he submitted, alice only since her job ended."""
    _ran(session, "alice", 0, ended=10)
    backlog = [_job(session, "alice", minute) for minute in (1, 2)]
    newcomer = _job(session, "bob", 5)

    assert _take(session, backlog[0]) == newcomer.id


def test_backlogged_owner_keeps_its_turn_against_owners_who_came_after_it_ended(
    session: Session,
) -> None:
    """No starvation: an owner arriving after alice's last job ended waits for alice's next."""
    _ran(session, "alice", 0, ended=10)
    backlog = _job(session, "alice", 1)
    later = _job(session, "carol", 11)

    assert _take(session, later) == backlog.id
    assert _take(session, later) == later.id


def test_owner_back_after_a_pause_does_not_collect_its_idle_time(session: Session) -> None:
    _ran(session, "alice", 0, ended=1)  # long ago
    waiting = _job(session, "bob", 20)
    returning = _job(session, "alice", 30)

    assert _take(session, returning) == waiting.id


def test_owner_with_fewest_running_jobs_goes_first(session: Session) -> None:
    _ran(session, "alice", 0)
    _ran(session, "alice", 1)
    _ran(session, "bob", 2)
    alices = _job(session, "alice", 3)
    bobs = _job(session, "bob", 4)

    assert _take(session, alices) == bobs.id


def test_jobs_of_one_owner_run_in_submit_order_whichever_message_comes(session: Session) -> None:
    first, second, third = (_job(session, "alice", minute) for minute in (1, 2, 3))

    assert [_take(session, job) for job in (third, first, second)] == [
        first.id,
        second.id,
        third.id,
    ]
    assert _take(session, third) is None


def test_job_handed_back_resumes_before_its_owners_later_jobs(session: Session) -> None:
    handed_back = _job(session, "alice", 1, started_at=_at(1), epoch=3)  # queued again
    later = _job(session, "alice", 2)

    assert _take(session, later) == handed_back.id


def test_each_message_claims_at_most_one_job_even_at_once(session: Session) -> None:
    """More messages than jobs, taken concurrently by several workers: every job is claimed once
    and the extra messages claim nothing."""
    queued = [_job(session, owner, minute) for minute in range(4) for owner in ("a", "b", "c")]

    def take(index: int) -> str | None:
        with get_sessionmaker()() as own:
            return _take(own, queued[index % len(queued)], f"w{index}@host")

    with ThreadPoolExecutor(6) as pool:
        claimed = list(pool.map(take, range(len(queued) + 4)))

    taken = [job_id for job_id in claimed if job_id is not None]
    assert sorted(taken) == sorted(job.id for job in queued)
    assert session.scalar(select(func.max(Job.attempts))) == 1


def test_message_claims_only_from_its_own_queue(session: Session) -> None:
    _ran(session, "alice", 0)
    cpu = _job(session, "bob", 1, device="cpu")
    gpu = _job(session, "alice", 2, device="gpu")

    assert _take(session, gpu) == gpu.id  # bob's job waits for a `training` worker
    assert _take(session, gpu) is None
    assert _take(session, cpu) == cpu.id


def test_repeated_job_runs_through_its_parts(session: Session) -> None:
    _ran(session, "alice", 0)
    parent = _job(session, "bob", 1, repeats=10)
    part = _job(session, "bob", 1, parent_id=parent.id)
    backlog = _job(session, "alice", 2)

    assert _take(session, backlog) == part.id
    session.refresh(parent)
    assert parent.status == JobStatus.running  # the job follows its part


@pytest.mark.parametrize("status", [JobStatus.running, JobStatus.succeeded])
def test_message_of_a_job_no_longer_queued_claims_the_fairest(
    session: Session, status: JobStatus
) -> None:
    taken = _job(session, "alice", 0, status=status)
    waiting = _job(session, "bob", 1)

    assert _take(session, taken) == waiting.id


def test_message_of_a_deleted_job_claims_nothing(session: Session) -> None:
    waiting = _job(session, "bob", 1)
    gone = Job(
        id="0" * 32,
        owner="x",
        dataset_id=waiting.dataset_id,
        task="regression",
        request={},
        epochs=1,
    )  # fmt: skip (never stored)

    assert _take(session, gone) is None
