"""A key that authenticated a moment ago (`service.core.recent`) needs no database lookup;
revoking it in this process takes effect at once all the same."""

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import delete

from service import keys
from service.core import recent
from service.core.db import session_scope
from service.core.orm import ApiKey
from tests.api.conftest import assert_envelope, bearer, client_beside, create_key


@pytest.fixture
def anonymous(client: TestClient) -> Iterator[TestClient]:
    yield from client_beside(client)


def assert_unauthorized(response: Response) -> str:
    return str(assert_envelope(response, 401)["detail"])


def test_recent_key_is_trusted_without_a_lookup_for_the_window(anonymous: TestClient) -> None:
    token = create_key("dora")
    assert anonymous.get("/v1/datasets", headers=bearer(token)).status_code == 200
    with session_scope() as session:  # gone from the database, as another process would do it
        session.execute(delete(ApiKey).where(ApiKey.owner == "dora"))

    assert keys.recent(token) == keys.Principal(owner="dora")
    assert anonymous.get("/v1/datasets", headers=bearer(token)).status_code == 200
    time.sleep(recent.WINDOW_SECONDS)
    assert_unauthorized(anonymous.get("/v1/datasets", headers=bearer(token)))


def test_revoking_a_recent_key_takes_effect_at_once(anonymous: TestClient) -> None:
    token = create_key("emil")
    assert anonymous.get("/v1/datasets", headers=bearer(token)).status_code == 200
    with session_scope() as session:
        keys.revoke(session, token)

    assert keys.recent(token) is None
    assert "revoked" in assert_unauthorized(anonymous.get("/v1/datasets", headers=bearer(token)))


def test_unknown_key_is_never_remembered(anonymous: TestClient) -> None:
    assert_unauthorized(anonymous.get("/v1/datasets", headers=bearer("dk_unknown")))

    assert keys.recent("dk_unknown") is None
