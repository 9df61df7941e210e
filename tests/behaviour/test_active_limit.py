"""The per-owner limit on queued and running jobs holds when submits arrive at once."""

import copy
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from service import datasets, jobs, keys
from service.core import queue
from service.core.config import Settings, get_settings
from service.core.db import get_sessionmaker
from service.core.errors import TooManyRequests
from service.schemas import examples
from service.schemas.jobs import JobCreate
from tests.conftest import DATA

OWNER = keys.Principal(owner="alice")


@pytest.fixture(autouse=True)
def one_active_job(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DENDRITE_MAX_ACTIVE_JOBS_PER_OWNER", "1")
    get_settings.cache_clear()
    queue.celery.cache_clear()
    yield
    queue.celery.cache_clear()


def _request() -> JobCreate:
    with get_sessionmaker()() as session, open(DATA / "concrete_data.csv", "rb") as handle:
        dataset = datasets.create(session, OWNER, handle, "concrete_data.csv", "text/csv", None)
        session.commit()
    body = copy.deepcopy(examples.CONCRETE_REGRESSION)
    body["dataset_id"] = dataset.id
    return JobCreate.model_validate(body)


def test_a_submit_waits_for_one_in_flight_and_then_counts_its_job() -> None:
    """The first submit has recorded its job but not committed; the second, at once, must count
    it (and get the 429) rather than find no active job and pass too."""
    request = _request()
    first, second = get_sessionmaker()(), get_sessionmaker()()
    jobs.submit(first, OWNER, request)

    def submit_second() -> str:
        try:
            jobs.submit(second, OWNER, request)
            second.commit()
            return "accepted"
        except TooManyRequests:
            second.rollback()
            return "429"

    with ThreadPoolExecutor(1) as pool:
        outcome = pool.submit(submit_second)
        time.sleep(0.5)  # the second is waiting for the first to end
        first.commit()
        result = outcome.result(timeout=30)
    first.close()
    second.close()
    assert result == "429"
