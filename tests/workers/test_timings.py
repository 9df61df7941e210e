"""A finished job records where its time went (`timings`), and GET /v1/jobs/{id} shows it."""

import copy

import pytest
from sqlalchemy.orm import Session

from service import datasets, jobs, keys
from service.core.orm import Job, JobStatus
from service.schemas import examples
from service.schemas.jobs import JobCreate
from tests.conftest import DATA
from workers import timings
from workers.tasks import run_job
from workers.timings import Laps

OWNER = keys.Principal(owner="alice")
PHASES = {
    "import",
    "load",
    "build",
    "trace",
    "fit",
    "first_epoch",
    "epoch_writes",
    "evaluate",
    "save",
}


def _submit(session: Session, **training: object) -> Job:
    with open(DATA / "concrete_data.csv", "rb") as handle:
        dataset = datasets.create(session, OWNER, handle, "concrete_data.csv", "text/csv", None)
    body = copy.deepcopy(examples.CONCRETE_REGRESSION)
    body["dataset_id"] = dataset.id
    body["training"] |= {"epochs": 3, **training}
    job = jobs.submit(session, OWNER, JobCreate.model_validate(body))
    session.commit()
    return job


def test_succeeded_job_records_its_phase_timings(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(timings, "import_seconds", 1.5)  # as a warmed pool process sets it
    job = _submit(session, test_split=0.2)

    run_job(job.id)

    session.refresh(job)
    assert job.status == JobStatus.succeeded, job.error
    assert job.timings is not None and set(job.timings) == PHASES
    assert job.timings["import"] == 1.5
    assert all(seconds >= 0 for seconds in job.timings.values())
    assert 0 < job.timings["epoch_writes"] < job.timings["fit"]
    assert 0 < job.timings["first_epoch"] < job.timings["fit"]
    assert jobs.to_read(job).timings == job.timings


def test_job_that_has_not_ended_has_no_timings(session: Session) -> None:
    job = _submit(session)

    assert job.timings is None and jobs.to_read(job).timings is None


def test_laps_book_time_to_phases_and_add_up(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([10.0, 10.5, 12.0, 12.25])
    monkeypatch.setattr("workers.timings.time.perf_counter", lambda: next(clock))
    laps = Laps()

    laps("load")
    laps("fit")
    laps("load")
    laps.add("epoch_writes", 0.75)

    assert laps.seconds == {"import": 0.0, "load": 0.75, "fit": 1.5, "epoch_writes": 0.75}
