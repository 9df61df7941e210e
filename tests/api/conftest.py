"""API test fixtures: TestClients with the app's lifespan running, each sending its owner's API key
(`client`: alice; `other_client`: bob; `admin_client`: an admin), and upload helpers."""

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from service import keys
from service.core import queue
from service.core.config import Settings
from service.core.db import session_scope
from service.main import create_app
from service.schemas import examples
from tests.conftest import DATA

Upload = Callable[..., Response]


OWNER, OTHER_OWNER, ADMIN_OWNER = "alice", "bob", "root"


def create_key(owner: str, admin: bool = False) -> str:
    """A new API key for `owner`, committed to the test database."""
    with session_scope() as session:
        _, token = keys.create(session, owner, admin=admin)
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    # The Celery app is cached per process; rebuild it so it uses this test's broker folder.
    queue.celery.cache_clear()
    # raise_server_exceptions=False: a bug must show up as the 500 a user would see.
    headers = bearer(create_key(OWNER))
    with TestClient(create_app(), raise_server_exceptions=False, headers=headers) as test_client:
        yield test_client
    queue.celery.cache_clear()


def client_beside(
    client: TestClient, headers: dict[str, str] | None = None
) -> Iterator[TestClient]:
    """Another client of the same app, whose lifespan `client` already runs (so no `with`)."""
    beside = TestClient(client.app, raise_server_exceptions=False, headers=headers)
    yield beside
    beside.close()


@pytest.fixture
def other_client(client: TestClient) -> Iterator[TestClient]:
    """A second owner's client on the same app."""
    yield from client_beside(client, bearer(create_key(OTHER_OWNER)))


@pytest.fixture
def admin_client(client: TestClient) -> Iterator[TestClient]:
    """An admin key's client on the same app: it sees every owner's things."""
    yield from client_beside(client, bearer(create_key(ADMIN_OWNER, admin=True)))


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
