"""API test fixtures: a TestClient with the app's lifespan running, and upload helpers."""

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from service import examples, queue
from service.config import Settings
from service.main import create_app
from tests.conftest import DATA

Upload = Callable[..., Response]


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    # The Celery app is cached per process; rebuild it so it uses this test's broker folder.
    queue.celery.cache_clear()
    # raise_server_exceptions=False: a bug must show up as the 500 a user would see.
    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client
    queue.celery.cache_clear()


def upload_bytes(
    client: TestClient,
    content: bytes,
    filename: str = "data.csv",
    name: str | None = None,
    content_type: str = "text/csv",
) -> Response:
    data = {"name": name} if name is not None else None
    return client.post("/v1/datasets", files={"file": (filename, content, content_type)}, data=data)


def upload_file(client: TestClient, filename: str, name: str | None = None) -> Response:
    """Upload a file from tests/data under its own name."""
    content_type = {".csv": "text/csv", ".npz": "application/octet-stream"}[Path(filename).suffix]
    return upload_bytes(client, (DATA / filename).read_bytes(), filename, name, content_type)


@pytest.fixture
def upload(client: TestClient) -> Upload:
    """Upload a tests/data file and return the created dataset (asserting the 201)."""

    def _upload(filename: str, name: str | None = None) -> Any:
        response = upload_file(client, filename, name)
        assert response.status_code == 201, response.text
        return response.json()

    return _upload


def concrete_job(dataset_id: str, **changes: Any) -> dict[str, Any]:
    """The course's concrete regression request for the given dataset, with top-level changes."""
    body = copy.deepcopy(examples.CONCRETE_REGRESSION)
    body["dataset_id"] = dataset_id
    body.update(changes)
    return body


def mnist_job(dataset_id: str) -> dict[str, Any]:
    body = copy.deepcopy(examples.MNIST_CLASSIFIER)
    body["dataset_id"] = dataset_id
    return body


def assert_envelope(response: Response, status: int, field: str | None = None) -> dict[str, Any]:
    """The error envelope: {"error", "detail"} plus "field" where one applies."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert {"error", "detail"} <= set(body) <= {"error", "detail", "field"}
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["detail"], str) and body["detail"]
    if field is not None:
        assert body.get("field") == field, body
    return body
