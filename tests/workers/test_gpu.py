"""On a machine with a visible GPU: jobs asking for it, or for `auto`, train on it and say so.
(Without one, tests/workers/test_tasks.py checks that `auto` records `cpu` and `gpu` fails.)"""

import copy

import pytest
import tensorflow as tf
from sqlalchemy.orm import Session

from service import datasets, jobs, keys
from service.core.orm import Job, JobStatus
from service.schemas import examples
from service.schemas.jobs import JobCreate
from tests.conftest import DATA
from workers.tasks import run_job

pytestmark = pytest.mark.skipif(
    not tf.config.list_physical_devices("GPU"), reason="no GPU is visible to TensorFlow"
)
OWNER = keys.Principal(owner="alice")


def _submit(session: Session, device: str) -> Job:
    with open(DATA / "concrete_data.csv", "rb") as handle:
        dataset = datasets.create(session, OWNER, handle, "concrete_data.csv", "text/csv", None)
    body = copy.deepcopy(examples.CONCRETE_REGRESSION)
    body["training"]["epochs"] = 3
    body.update(dataset_id=dataset.id, device=device)
    job = jobs.submit(session, OWNER, JobCreate.model_validate(body))
    session.commit()
    return job


@pytest.mark.parametrize("device", ["gpu", "auto"])
def test_job_trains_on_the_gpu_and_records_it(session: Session, device: str) -> None:
    job = _submit(session, device)

    run_job(job.id)

    session.expire_all()
    assert job.status == JobStatus.succeeded, job.error
    assert job.device_used is not None and job.device_used.startswith("gpu")
    assert [m.epoch for m in job.history] == [1, 2, 3]


def test_memory_growth_lets_jobs_share_the_card(session: Session) -> None:
    run_job(_submit(session, "gpu").id)

    for gpu in tf.config.list_physical_devices("GPU"):
        assert tf.config.experimental.get_memory_growth(gpu)
