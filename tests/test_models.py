"""Predictions through `models.predict`, which remembers a model it looked up for a moment
(`service.core.recent`): the same answers as from the stored model, owner isolation for a model
another owner's request just loaded, and a deletion in this process seen at once."""

import copy

import pytest
from sqlalchemy.orm import Session

from service import datasets, jobs, keys, models
from service.core.errors import NotFound
from service.core.orm import JobStatus
from service.ml import inference
from service.schemas import examples
from service.schemas.jobs import JobCreate
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


def test_predict_answers_from_a_recent_lookup_as_from_the_stored_model(
    session: Session, model_id: str
) -> None:
    rows = examples.CONCRETE_PREDICT["instances"] * 3

    first = models.predict(ALICE, model_id, rows)  # looked up in the database
    again = models.predict(ALICE, model_id, rows)  # from the recent lookup

    model = models.get(session, ALICE, model_id)
    stored = inference.predict(model.storage_key, model.input_schema, model.outputs, rows)
    assert first == again == stored
    assert len(first) == 3 and set(first[0]) == {"Strength"}


def test_predict_hides_a_recently_used_model_from_another_owner(model_id: str) -> None:
    models.predict(ALICE, model_id, examples.CONCRETE_PREDICT["instances"])

    with pytest.raises(NotFound):
        models.predict(BOB, model_id, examples.CONCRETE_PREDICT["instances"])
    assert models.predict(ROOT, model_id, examples.CONCRETE_PREDICT["instances"])


def test_predict_refuses_a_recently_used_model_deleted_in_this_process(
    session: Session, model_id: str
) -> None:
    models.predict(ALICE, model_id, examples.CONCRETE_PREDICT["instances"])
    dataset_id = models.get(session, ALICE, model_id).job.dataset_id

    datasets.delete(session, ALICE, dataset_id, cascade=True)
    session.commit()

    with pytest.raises(NotFound):
        models.predict(ALICE, model_id, examples.CONCRETE_PREDICT["instances"])
