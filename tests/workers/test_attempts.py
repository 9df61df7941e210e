"""A worker's claims and ends go through the lease, and a repeated job follows its part's."""

import copy
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from service import datasets, jobs, keys
from service.core import queue
from service.core.orm import Job, JobStatus
from service.schemas import examples
from service.schemas.jobs import JobCreate
from tests.conftest import DATA
from workers import attempts

OWNER = keys.Principal(owner="alice")


@pytest.fixture(autouse=True)
def broker() -> Iterator[None]:
    queue.celery.cache_clear()
    yield
    queue.celery.cache_clear()


def _submit(session: Session, body: dict[str, object]) -> Job:
    with open(DATA / "concrete_data.csv", "rb") as handle:
        dataset = datasets.create(session, OWNER, handle, "concrete_data.csv", "text/csv", None)
    body = copy.deepcopy(body) | {"dataset_id": dataset.id}
    job = jobs.submit(session, OWNER, JobCreate.model_validate(body))
    session.commit()
    return job


def test_claim_and_end_run_a_plain_job(session: Session) -> None:
    job = _submit(session, examples.CONCRETE_REGRESSION)

    attempt = attempts.claim(session, job.id, "w1@host")
    session.commit()
    assert attempt is not None and attempt.job_id == job.id
    assert attempts.end(session, attempt, JobStatus.failed, "it broke")
    session.commit()

    session.refresh(job)
    assert (job.status, job.error) == (JobStatus.failed, "it broke")
    assert attempts.claim(session, job.id, "w2@host") is None  # nothing else is queued
    assert not attempts.end(session, attempt, JobStatus.succeeded)  # it ended already


def test_a_repeated_job_follows_its_parts_claim_and_end(session: Session) -> None:
    job = _submit(session, examples.CONCRETE_REPEATED | {"repeats": 2})
    parts = session.scalars(select(Job).where(Job.parent_id == job.id)).all()
    assert len(parts) == 2

    claimed = [attempts.claim(session, part.id, "w1@host") for part in parts]
    session.commit()
    session.refresh(job)
    assert job.status == JobStatus.running

    for attempt in claimed:
        assert attempt is not None and attempts.end(session, attempt, JobStatus.succeeded)
    session.commit()
    session.refresh(job)
    assert job.status == JobStatus.succeeded and job.finished_at is not None
