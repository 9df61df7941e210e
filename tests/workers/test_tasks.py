"""The training task called directly (no broker round trip): job id in, end state recorded."""

import copy

import pytest
from sqlalchemy.orm import Session

from service import datasets, jobs, keys
from service.core import storage
from service.core.orm import EpochMetric, Job, JobStatus
from service.schemas import examples
from service.schemas.jobs import JobCreate
from tests.conftest import DATA
from workers.tasks import run_job

OWNER = keys.Principal(owner="alice")


def _submit(session: Session, **changes: object) -> Job:
    with open(DATA / "concrete_data.csv", "rb") as handle:
        datasets.create(session, OWNER, handle, "concrete_data.csv", "text/csv", "concrete")
    body = copy.deepcopy(examples.CONCRETE_REGRESSION)
    body["training"]["epochs"] = 3
    body.update(changes)
    job = jobs.submit(session, OWNER, JobCreate.model_validate(body))
    session.commit()
    return job


def test_run_job_trains_records_history_and_saves_the_model(session: Session) -> None:
    job = _submit(session)
    run_job(job.id)
    session.expire_all()
    assert job.status == JobStatus.succeeded, job.error
    assert job.epoch == 3 and job.device_used == "cpu"
    assert [m.epoch for m in job.history] == [1, 2, 3]
    assert {"loss", "val_loss", "mae", "val_mae"} <= set(job.history[0].metrics)
    assert job.model is not None and storage.exists(job.model.storage_key)
    assert job.model.owner == "alice"
    assert job.model.parameters == 450 + 2550 + 51  # the course net: Dense(50), Dense(50), Dense(1)


def test_run_job_leaves_a_cancelled_job_alone(session: Session) -> None:
    job = _submit(session)
    jobs.cancel(session, OWNER, job.id)
    session.commit()
    run_job(job.id)
    session.expire_all()
    assert job.status == JobStatus.cancelled and job.started_at is None
    assert session.query(EpochMetric).filter_by(job_id=job.id).count() == 0


def test_run_job_fails_with_a_reason_when_no_gpu_is_visible(session: Session) -> None:
    job = _submit(session, device="gpu")
    run_job(job.id)
    session.expire_all()
    assert job.status == JobStatus.failed
    assert job.error is not None and "GPU" in job.error


def test_a_reused_process_pays_the_import_once_and_keeps_nothing_of_a_job(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pool process runs several jobs (DENDRITE_WORKER_JOBS_PER_PROCESS): the first job's
    timings carry the process' TensorFlow import, the next ones none; the traced loop it keeps
    holds no rows of an ended job, and the next job trains exactly as the first did."""
    from workers import loop as loops
    from workers import timings

    loops.forget()
    monkeypatch.setattr(timings, "import_seconds", 2.5)
    first, second = _submit(session), _submit(session)

    run_job(first.id)
    [kept] = loops.kept_loops()
    assert kept.train is None and kept.validation is None  # the rows went with the job
    run_job(second.id)
    session.expire_all()

    assert first.status == second.status == JobStatus.succeeded
    assert first.timings is not None and first.timings["import"] == 2.5
    assert second.timings is not None and second.timings["import"] == 0.0
    assert timings.import_seconds == 0.0
    assert loops.kept_loops() == [kept]  # the second job trained the kept loop
    assert [row.metrics for row in second.history] == [row.metrics for row in first.history]
