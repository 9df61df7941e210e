"""Jobs for the lease and recovery tests: submitted, claimed by a worker, gone silent."""

import copy
from datetime import timedelta

from sqlalchemy.orm import Session

from service import datasets, jobs, keys, leases
from service.core.orm import Job, utcnow
from service.schemas import examples
from service.schemas.jobs import JobCreate
from tests.conftest import DATA

OWNER = keys.Principal(owner="alice")


def submit(session: Session, device: str = "auto") -> Job:
    with open(DATA / "concrete_data.csv", "rb") as handle:
        dataset = datasets.create(session, OWNER, handle, "concrete_data.csv", "text/csv", None)
    body = copy.deepcopy(examples.CONCRETE_REGRESSION)
    body.update(dataset_id=dataset.id, device=device)
    job = jobs.submit(session, OWNER, JobCreate.model_validate(body))
    session.commit()
    return job


def claim(session: Session, job: Job, worker: str = "w1@host") -> leases.Attempt:
    attempt = leases.claim(session, job.id, worker)
    session.commit()
    assert attempt is not None
    return attempt


def silence(session: Session, job: Job, seconds: float = 600) -> None:
    """The worker stopped sending heartbeats `seconds` ago."""
    session.refresh(job)
    job.heartbeat_at = utcnow() - timedelta(seconds=seconds)
    session.commit()
