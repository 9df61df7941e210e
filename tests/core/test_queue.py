"""Routing through a real Redis broker, as in the stack: `"device": "gpu"` jobs wait in the
`training-gpu` queue, `auto` and `cpu` ones in `training` (only GPU workers listen to the first).

Skips without Redis on 127.0.0.1:6379 on a laptop; fails under CI=true.
"""

import copy
import os
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from service import datasets, jobs, keys
from service.core import queue
from service.core.config import get_settings
from service.schemas import examples
from service.schemas.jobs import JobCreate
from tests.conftest import DATA

REDIS_URL = os.environ.get("DENDRITE_TEST_REDIS", "redis://127.0.0.1:6379/13")
OWNER = keys.Principal(owner="alice")


@pytest.fixture
def redis_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The broker is an emptied Redis database for the test."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=3)
    try:
        client.flushdb()
    except redis.RedisError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs Redis at {REDIS_URL}: {error}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {error}")
    monkeypatch.setenv("DENDRITE_BROKER_URL", REDIS_URL)
    get_settings.cache_clear()
    queue.celery.cache_clear()
    yield
    queue.celery.cache_clear()
    client.flushdb()
    client.close()


def _submit(session: Session, device: str) -> None:
    with open(DATA / "concrete_data.csv", "rb") as handle:
        dataset = datasets.create(session, OWNER, handle, "concrete_data.csv", "text/csv", None)
    body = copy.deepcopy(examples.CONCRETE_REGRESSION)
    body.update(dataset_id=dataset.id, device=device)
    jobs.submit(session, OWNER, JobCreate.model_validate(body))
    session.commit()  # the message is sent after the commit


@pytest.mark.parametrize(
    ("device", "waiting"),
    [("gpu", {"training": 0, "training-gpu": 1}), ("auto", {"training": 1, "training-gpu": 0}),
     ("cpu", {"training": 1, "training-gpu": 0})],
)  # fmt: skip
def test_submitted_job_waits_in_its_device_queue(
    redis_broker: None, session: Session, device: str, waiting: dict[str, int]
) -> None:
    _submit(session, device)

    assert {name: queue.waiting(name) for name in waiting} == waiting
