"""The jobs use case (service/jobs.py), called as the routes call it: submit, read, list, history,
cancel. Routes and their HTTP answers are in tests/api/; training itself in tests/workers/."""

import copy
from typing import Any

import pytest
from sqlalchemy.orm import Session

from service import datasets, jobs, keys
from service.core.errors import Conflict, NotFound, TooManyRequests
from service.core.orm import EpochMetric, Job, JobStatus
from service.schemas import examples
from service.schemas.jobs import JobCreate
from tests.conftest import DATA

ALICE = keys.Principal(owner="alice")
BOB = keys.Principal(owner="bob")
ADMIN = keys.Principal(owner="ops", is_admin=True)


@pytest.fixture
def dataset_id(concrete_dataset_id: str) -> str:
    return concrete_dataset_id


def _request(dataset_id: str, **training: Any) -> JobCreate:
    body = copy.deepcopy(examples.CONCRETE_REGRESSION)
    body["dataset_id"] = dataset_id
    body["training"].update(training)
    return JobCreate.model_validate(body)


def test_submit_records_a_queued_job_with_the_request_resolved(
    session: Session, dataset_id: str
) -> None:
    job = jobs.submit(session, ALICE, _request(dataset_id, seed=None))
    session.commit()

    stored = session.get(Job, job.id)
    assert stored is not None and stored.status == JobStatus.queued
    assert stored.owner == "alice" and stored.dataset_id == dataset_id
    training = stored.request["training"]
    assert isinstance(training["seed"], int)  # drawn once, so a rerun can repeat it
    assert training["loss"] == "mean_squared_error"
    assert stored.request["network"]["output_activation"] == "linear"


def test_submit_by_dataset_name_records_the_dataset_id(session: Session, dataset_id: str) -> None:
    request = _request(dataset_id)
    request.dataset_id = "concrete_data"

    job = jobs.submit(session, ALICE, request)

    assert job.dataset_id == dataset_id
    assert job.request["dataset_id"] == dataset_id


def test_another_owner_s_dataset_cannot_be_trained_on(session: Session, dataset_id: str) -> None:
    with pytest.raises(NotFound):
        jobs.submit(session, BOB, _request(dataset_id))


def test_the_same_idempotency_key_and_body_replays_the_job(
    session: Session, dataset_id: str
) -> None:
    first = jobs.submit(session, ALICE, _request(dataset_id), idempotency_key="k1")
    session.commit()

    again = jobs.submit(session, ALICE, _request(dataset_id), idempotency_key="k1")
    other_owner = jobs.submit(session, BOB, _request_for_bob(session), idempotency_key="k1")

    assert again.id == first.id
    assert other_owner.id != first.id  # keys are per owner
    with pytest.raises(Conflict) as refused:
        jobs.submit(session, ALICE, _request(dataset_id, epochs=7), idempotency_key="k1")
    assert refused.value.field == "Idempotency-Key"


def _request_for_bob(session: Session) -> JobCreate:
    with open(DATA / "concrete_data.csv", "rb") as handle:
        dataset = datasets.create(session, BOB, handle, "concrete_data.csv", "text/csv", None)
    return _request(dataset.id)


def test_the_active_job_limit_refuses_with_retry_after(
    session: Session, dataset_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.core.config import get_settings

    monkeypatch.setenv("DENDRITE_MAX_ACTIVE_JOBS_PER_OWNER", "1")
    get_settings.cache_clear()
    jobs.submit(session, ALICE, _request(dataset_id))
    session.commit()

    with pytest.raises(TooManyRequests) as refused:
        jobs.submit(session, ALICE, _request(dataset_id))
    assert refused.value.headers == {"Retry-After": str(jobs.RETRY_AFTER_SECONDS)}
    assert jobs.active_jobs(session, "alice") == 1


def test_get_and_page_show_an_owner_only_their_jobs(session: Session, dataset_id: str) -> None:
    job = jobs.submit(session, ALICE, _request(dataset_id))
    session.commit()

    assert jobs.get(session, ALICE, job.id).id == job.id
    assert jobs.get(session, ADMIN, job.id).id == job.id
    with pytest.raises(NotFound, match=job.id):
        jobs.get(session, BOB, job.id)
    assert jobs.page(session, ALICE, None, 10, 0)[1] == 1
    assert jobs.page(session, BOB, None, 10, 0) == ([], 0)
    assert jobs.page(session, ALICE, JobStatus.succeeded, 10, 0)[1] == 0


def test_history_thins_long_runs_but_keeps_the_first_and_last_epoch(
    session: Session, dataset_id: str
) -> None:
    job = jobs.submit(session, ALICE, _request(dataset_id))
    for epoch in range(1, 101):
        session.add(EpochMetric(job_id=job.id, epoch=epoch, seconds=0.1, metrics={"loss": 1.0}))
    session.commit()

    whole = jobs.history(session, ALICE, job.id, None, 0)
    thinned = jobs.history(session, ALICE, job.id, None, 0, max_points=10)
    after = jobs.history(session, ALICE, job.id, 5, 0, after_epoch=95)

    assert whole.total == 100 and len(whole.epochs) == 100
    epochs = [row.epoch for row in thinned.epochs]
    assert len(epochs) <= 10 and epochs[0] == 1 and epochs[-1] == 100
    assert [row.epoch for row in after.epochs] == [96, 97, 98, 99, 100]


def test_cancel_ends_a_queued_job_and_asks_a_running_one_to_stop(
    session: Session, dataset_id: str
) -> None:
    queued = jobs.submit(session, ALICE, _request(dataset_id))
    running = jobs.submit(session, ALICE, _request(dataset_id))
    running.status = JobStatus.running
    session.commit()

    assert jobs.cancel(session, ALICE, queued.id).status == JobStatus.cancelled
    assert jobs.cancel(session, ALICE, running.id).cancel_requested
    assert running.status == JobStatus.running  # the worker stops it at a batch boundary
    with pytest.raises(Conflict, match="already ended"):
        jobs.cancel(session, ALICE, queued.id)
    with pytest.raises(NotFound):
        jobs.cancel(session, BOB, running.id)


def test_to_read_reports_progress_and_links(session: Session, dataset_id: str) -> None:
    job = jobs.submit(session, ALICE, _request(dataset_id, epochs=40))
    session.commit()

    read = jobs.to_read(job)

    assert read.id == job.id and read.status == JobStatus.queued
    assert read.progress.epochs == 40 and read.progress.epoch == 0
    assert read.model_id is None
