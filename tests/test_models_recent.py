"""Predictions through `models.predict_recent`: the same answers as a looked-up model, and owner
isolation for a model another owner's request just loaded."""

import copy

import pytest
from sqlalchemy.orm import Session

from service import datasets, jobs, keys, models
from service.core.errors import NotFound
from service.core.orm import JobStatus
from service.schemas import JobCreate, examples
from tests.conftest import DATA
from workers.tasks import run_job

ALICE, BOB = keys.Principal(owner="alice"), keys.Principal(owner="bob")
ROOT = keys.Principal(owner="root", is_admin=True)


@pytest.fixture
def model_id(session: Session) -> str:
    with open(DATA / "concrete_data.csv", "rb") as handle:
        dataset = datasets.create(session, ALICE, handle, "concrete_data.csv", "text/csv", None)
    body = copy.deepcopy(examples.CONCRETE_REGRESSION)
    body["dataset_id"] = dataset.id
    body["training"]["epochs"] = 2
    job = jobs.submit(session, ALICE, JobCreate.model_validate(body))
    session.commit()
    run_job(job.id)
    session.refresh(job)
    assert job.status == JobStatus.succeeded and job.model is not None, job.error
    return job.model.id


def test_predict_recent_answers_as_predict(session: Session, model_id: str) -> None:
    rows = examples.CONCRETE_PREDICT["instances"] * 3

    first = models.predict_recent(ALICE, model_id, rows)
    again = models.predict_recent(ALICE, model_id, rows)  # from the recent lookups

    assert first == again == models.predict(session, ALICE, model_id, rows)
    assert len(first) == 3 and set(first[0]) == {"Strength"}


def test_predict_recent_hides_a_recently_used_model_from_another_owner(model_id: str) -> None:
    models.predict_recent(ALICE, model_id, examples.CONCRETE_PREDICT["instances"])

    with pytest.raises(NotFound):
        models.predict_recent(BOB, model_id, examples.CONCRETE_PREDICT["instances"])
    assert models.predict_recent(ROOT, model_id, examples.CONCRETE_PREDICT["instances"])
