"""GET /v1/jobs/{id}/history on a long job: pages after an epoch, and evenly thinned rows."""

from itertools import pairwise
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.core.db import session_scope
from service.core.orm import EpochMetric
from tests.api.conftest import Upload, assert_envelope, concrete_job

EPOCHS = 1000


@pytest.fixture
def long_job(client: TestClient, upload: Upload) -> str:
    """A job with EPOCHS history rows, written as a worker would have written them."""
    upload("concrete_data.csv", name="concrete")
    response = client.post("/v1/jobs", json=concrete_job("concrete"))
    assert response.status_code == 202, response.text
    job_id = str(response.json()["id"])
    with session_scope() as session:
        session.add_all(
            EpochMetric(job_id=job_id, epoch=e, metrics={"loss": 1000.0 / e}, seconds=0.01)
            for e in range(1, EPOCHS + 1)
        )
    return job_id


def history(client: TestClient, job_id: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/v1/jobs/{job_id}/history", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def epochs(body: dict[str, Any]) -> list[int]:
    return [row["epoch"] for row in body["epochs"]]


def test_history_without_parameters_returns_every_epoch(client: TestClient, long_job: str) -> None:
    body = history(client, long_job)

    assert epochs(body) == list(range(1, EPOCHS + 1))
    assert body["total"] == EPOCHS
    assert body["epochs"][1] == {"epoch": 2, "seconds": 0.01, "metrics": {"loss": 500.0}}


def test_history_after_epoch_returns_the_next_page(client: TestClient, long_job: str) -> None:
    first = history(client, long_job, limit=300)
    second = history(client, long_job, limit=300, after_epoch=epochs(first)[-1])
    last = history(client, long_job, limit=300, after_epoch=900)

    assert epochs(first) == list(range(1, 301))
    assert epochs(second) == list(range(301, 601))
    assert epochs(last) == list(range(901, 1001))
    assert history(client, long_job, after_epoch=EPOCHS)["epochs"] == []
    assert last["total"] == EPOCHS


@pytest.mark.parametrize("max_points", [2, 3, 7, 100, 333, 999])
def test_history_max_points_thins_evenly_keeping_first_and_last(
    client: TestClient, long_job: str, max_points: int
) -> None:
    kept = epochs(history(client, long_job, max_points=max_points))

    assert 2 <= len(kept) <= max_points
    assert kept[0] == 1 and kept[-1] == EPOCHS
    gaps = {b - a for a, b in pairwise(kept[:-1])}
    assert len(gaps) <= 1  # evenly spaced, but for the last row
    assert len(kept) >= max_points // 2  # thinned no more than needed


def test_history_max_points_above_the_rows_returns_them_all(
    client: TestClient, long_job: str
) -> None:
    assert epochs(history(client, long_job, max_points=5000)) == list(range(1, EPOCHS + 1))


def test_history_max_points_combines_with_after_epoch(client: TestClient, long_job: str) -> None:
    kept = epochs(history(client, long_job, after_epoch=500, max_points=11))

    assert kept == [*range(501, 1001, 50), 1000]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"max_points": 1}, "max_points"), ({"after_epoch": -1}, "after_epoch")],
)
def test_history_bad_parameters_return_422(
    client: TestClient, long_job: str, params: dict[str, int], field: str
) -> None:
    assert_envelope(client.get(f"/v1/jobs/{long_job}/history", params=params), 422, field=field)


def test_history_of_another_owners_job_returns_404(other_client: TestClient, long_job: str) -> None:
    response = other_client.get(f"/v1/jobs/{long_job}/history", params={"max_points": 10})

    assert_envelope(response, 404, field="job_id")
