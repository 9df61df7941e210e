"""Repeated jobs as use cases: fan-out into parts, seeds, and the job following its parts' claims
and ends (`repeats.settle`, called as the worker calls it after each lease transition), against
the real database, `service.leases` and the embedded broker."""

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from service import datasets, jobs, keys, leases, recovery
from service.core import queue
from service.core.config import get_settings
from service.core.errors import InvalidInput
from service.core.orm import Job, JobRepeat, JobStatus
from service.experiments import repeats
from service.schemas import examples
from service.schemas.jobs import JobCreate
from tests.conftest import DATA

OWNER = keys.Principal(owner="alice")


@pytest.fixture(autouse=True)
def broker() -> Iterator[None]:
    queue.celery.cache_clear()
    yield
    queue.celery.cache_clear()


def _submit(session: Session, count: int, **training: Any) -> Job:
    with open(DATA / "concrete_data.csv", "rb") as handle:
        dataset = datasets.create(session, OWNER, handle, "concrete_data.csv", "text/csv", None)
    body = copy.deepcopy(examples.CONCRETE_REPEATED)
    body.update(dataset_id=dataset.id, repeats=count)
    body["training"].update(training)
    job = jobs.submit(session, OWNER, JobCreate.model_validate(body))
    session.commit()
    return job


def _parts(session: Session, job: Job) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.parent_id == job.id).order_by(Job.id)))


def _claim(session: Session, part: Job) -> leases.Attempt | None:
    """What a worker does: claim the part's lease, then let its job follow."""
    attempt = leases.claim(session, part.id, "w1@host")
    repeats.settle(session, part.id)
    return attempt


def _end(session: Session, attempt: leases.Attempt, status: JobStatus, error: str | None) -> bool:
    """What a worker does: end the part's lease, then let its job follow."""
    ended = leases.end(session, attempt, status, error)
    repeats.settle(session, attempt.job_id)
    return ended


def _run(session: Session, part: Job, status: JobStatus) -> None:
    attempt = _claim(session, part)
    assert attempt is not None
    _end(session, attempt, status, None if status == "succeeded" else "it broke")
    session.commit()


def test_seed_for_keeps_the_jobs_seed_for_repeat_zero_and_derives_distinct_others() -> None:
    seeds = [repeats.seed_for(42, index) for index in range(50)]
    assert seeds[0] == 42
    assert len(set(seeds)) == 50 and all(0 <= seed < 2**31 for seed in seeds)
    assert repeats.seed_for(42, 7) == seeds[7] != repeats.seed_for(43, 7)


def test_fan_out_splits_repeats_into_at_most_repeat_tasks_parts(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DENDRITE_REPEAT_TASKS", "3")
    get_settings.cache_clear()
    job = _submit(session, 8)

    parts = _parts(session, job)
    assert len(parts) == 3 and all(p.repeats == 1 and p.status == "queued" for p in parts)
    rows = session.scalars(select(JobRepeat).where(JobRepeat.job_id == job.id)).all()
    assert sorted(r.index for r in rows) == list(range(8))
    assert sorted(sum(r.run_job_id == p.id for r in rows) for p in parts) == [2, 3, 3]
    assert {r.seed for r in rows if r.index == 0} == {job.request["training"]["seed"]}
    # Only the parts are sent to the broker, never the repeated job itself.
    assert queue.waiting("training") == 3


def test_repeated_job_needs_a_test_split(session: Session) -> None:
    with pytest.raises(InvalidInput) as raised:
        _submit(session, 3, test_split=0.0)
    assert raised.value.field == "/training/test_split"


def test_job_runs_with_its_first_part_and_succeeds_when_all_parts_do(session: Session) -> None:
    job = _submit(session, 3)
    first, *others = _parts(session, job)

    assert _claim(session, first) is not None
    session.commit()
    session.refresh(job)
    assert job.status == "running" and job.started_at is not None

    for part in others:
        _run(session, part, JobStatus.succeeded)
    session.refresh(job)
    assert job.status == "running"
    attempt = leases.Attempt(first.id, "w1@host", 1, first.started_at or job.started_at)
    assert _end(session, attempt, JobStatus.succeeded, None)
    session.commit()
    session.refresh(job)
    assert (job.status, job.error) == ("succeeded", None) and job.finished_at is not None


def test_job_fails_when_a_part_fails_and_names_it(session: Session) -> None:
    job = _submit(session, 2)
    good, bad = _parts(session, job)
    _run(session, bad, JobStatus.failed)
    _run(session, good, JobStatus.succeeded)
    session.refresh(job)
    assert job.status == "failed"
    assert job.error is not None and bad.id in job.error and "it broke" in job.error


def test_job_fails_when_recovery_fails_a_part(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DENDRITE_MAX_ATTEMPTS", "1")
    get_settings.cache_clear()
    job = _submit(session, 2)
    lost, good = _parts(session, job)
    _run(session, good, JobStatus.succeeded)
    assert _claim(session, lost) is not None
    session.commit()

    recovered = recovery.requeue_lost(session, lost.id, "w1@host", "was killed (SIGKILL)")
    session.commit()
    session.refresh(job)
    assert recovered.failed == 1
    assert job.status == "failed" and job.error is not None and lost.id in job.error


def test_cancel_cancels_queued_parts_and_asks_running_ones_to_stop(session: Session) -> None:
    job = _submit(session, 3)
    running, *queued = _parts(session, job)
    assert _claim(session, running) is not None
    session.commit()

    jobs.cancel(session, OWNER, job.id)
    session.commit()

    for part in queued:
        session.refresh(part)
        assert part.status == "cancelled"
    session.refresh(running)
    session.refresh(job)
    assert running.status == "running" and running.cancel_requested
    assert job.status == "running"  # until its running part stops
    attempt = leases.Attempt(running.id, "w1@host", 1, running.started_at or job.created_at)
    _end(session, attempt, JobStatus.cancelled, "cancelled while running")
    session.commit()
    session.refresh(job)
    assert job.status == "cancelled"


def test_settle_stuck_finishes_a_job_whose_parts_ended_unnoticed(session: Session) -> None:
    job = _submit(session, 2)
    for part in _parts(session, job):
        part.status = JobStatus.succeeded  # as if written without `settle`
    session.commit()

    assert repeats.settle_stuck(session) == 1
    session.commit()
    session.refresh(job)
    assert job.status == "succeeded"
    assert repeats.settle_stuck(session) == 0


def test_summary_aggregates_succeeded_repeats_with_population_std(session: Session) -> None:
    job = _submit(session, 3)
    rows = session.scalars(
        select(JobRepeat).where(JobRepeat.job_id == job.id).order_by(JobRepeat.index)
    ).all()
    for row, loss in zip(rows[:2], (100.0, 140.0), strict=True):
        row.status, row.test_metrics, row.epochs = JobStatus.succeeded, {"loss": loss}, 50
    session.commit()
    session.refresh(job)

    summary = repeats.summary(job)
    assert (summary.requested, summary.succeeded, summary.failed) == (3, 2, 0)
    mse = summary.test_metrics["loss"]
    assert (mse.mean, mse.std, mse.min, mse.max, mse.count) == (120.0, 20.0, 100.0, 140.0, 2)
    assert repeats.progress(job).model_dump() == {"epoch": 100, "epochs": 150}
