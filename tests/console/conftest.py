"""Console test fixtures: the app with its lifespan running, and browsers-as-clients signed in
through the sign-in form (cookies kept, redirects not followed)."""

import re
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from service.core import queue
from service.core.config import Settings
from service.main import create_app
from tests.api.conftest import create_key

SignIn = Callable[..., TestClient]


@pytest.fixture
def app_client(settings: Settings) -> Iterator[TestClient]:
    queue.celery.cache_clear()
    with TestClient(create_app(), raise_server_exceptions=False, follow_redirects=False) as c:
        yield c
    queue.celery.cache_clear()


def form_token(page: str, name: str = "csrf") -> str:
    match = re.search(rf'name="{name}" value="([^"]+)"', page)
    assert match is not None, page
    return match[1]


def sign_in_with(client: TestClient, key: str) -> TestClient:
    form = client.get("/ui/sign-in")
    token = form_token(form.text, "sign_in_token")
    signed_in = client.post("/ui/sign-in", data={"sign_in_token": token, "key": key})
    assert signed_in.status_code == 303, signed_in.text
    return client


@pytest.fixture
def sign_in(app_client: TestClient) -> Iterator[SignIn]:
    """A new browser (client) on the same app, signed in as `owner` with a new key."""
    clients: list[TestClient] = []

    def _sign_in(owner: str, admin: bool = False) -> TestClient:
        client = TestClient(app_client.app, raise_server_exceptions=False, follow_redirects=False)
        clients.append(client)
        return sign_in_with(client, create_key(owner, admin=admin))

    yield _sign_in
    for client in clients:
        client.close()
