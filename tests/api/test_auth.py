"""Authentication over HTTP: bearer keys, 401s, the open endpoints, the OpenAPI scheme, turning
it off, and the `dendrite keys` commands."""

import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import select
from typer.testing import CliRunner

from service import keys
from service.cli import app as cli
from service.core.config import get_settings
from service.core.db import get_sessionmaker, session_scope
from service.core.orm import ApiKey, Dataset
from service.main import create_app
from tests.api.conftest import assert_envelope, bearer, client_beside, create_key, upload_file

PROTECTED = [
    ("GET", "/v1/datasets"),
    ("GET", "/v1/datasets/some-id/preview"),
    ("DELETE", "/v1/datasets/some-id"),
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs/some-id/history"),
    ("POST", "/v1/jobs/some-id/cancel"),
    ("POST", "/v1/specs/validate"),
    ("GET", "/v1/models"),
    ("POST", "/v1/models/some-id/predict"),
    ("GET", "/v1/models/some-id/download"),
]


@pytest.fixture
def anonymous(client: TestClient) -> Iterator[TestClient]:
    """A client of the same app that sends no key."""
    yield from client_beside(client)


def assert_unauthorized(response: Response) -> str:
    body = assert_envelope(response, 401)
    assert body["error"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"
    return str(body["detail"])


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_request_without_key_returns_401_envelope(
    anonymous: TestClient, method: str, path: str
) -> None:
    detail = assert_unauthorized(anonymous.request(method, path))

    assert "Authorization: Bearer" in detail and "dendrite keys create" in detail


@pytest.mark.parametrize(
    "authorization", ["Bearer dk_unknown", "Bearer ", "Basic YWxpY2U6c2VjcmV0", "dk_no_scheme"]
)
def test_request_with_bad_key_returns_401(anonymous: TestClient, authorization: str) -> None:
    response = anonymous.get("/v1/datasets", headers={"Authorization": authorization})

    assert_unauthorized(response)


def test_request_with_revoked_key_returns_401(anonymous: TestClient) -> None:
    token = create_key("carol")
    assert anonymous.get("/v1/datasets", headers=bearer(token)).status_code == 200
    with session_scope() as session:
        keys.revoke(session, token)

    response = anonymous.get("/v1/datasets", headers=bearer(token))

    assert "revoked" in assert_unauthorized(response)


def test_request_without_key_uploads_nothing(anonymous: TestClient) -> None:
    response = upload_file(anonymous, "concrete_data.csv", name="concrete")

    assert_unauthorized(response)
    with get_sessionmaker()() as session:
        assert session.scalars(select(Dataset)).all() == []


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        ("/v1/jobs", b'{"dataset_id": ', "application/json"),  # malformed JSON
        ("/v1/specs/validate", b"[" * 10_000, "application/json"),  # too deep
        ("/v1/models/some-id/predict", b"\xff\xfe", "text/csv"),
    ],
)
def test_body_without_key_gets_401_not_its_validation_error(
    anonymous: TestClient, path: str, body: bytes, content_type: str
) -> None:
    response = anonymous.post(path, content=body, headers={"Content-Type": content_type})

    assert_unauthorized(response)


def test_body_without_valid_key_is_never_read(client: TestClient) -> None:
    """The app answers 401 without asking for one byte of the body."""
    received: list[str] = []
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        received.append("body")
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    for authorization in (b"", b"Bearer dk_unknown"):
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/datasets",
            "raw_path": b"/v1/datasets",
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"content-type", b"multipart/form-data; boundary=x"),
                (b"content-length", b"104857600"),
                *([(b"authorization", authorization)] if authorization else []),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        client.portal.call(client.app, scope, receive, send)  # type: ignore[union-attr]

    assert received == []
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [401, 401]


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/docs", "/openapi.json"])
def test_open_endpoints_answer_without_key(anonymous: TestClient, path: str) -> None:
    response = anonymous.get(path)

    assert response.status_code == 200, response.text


def test_request_with_key_records_its_last_use(client: TestClient) -> None:
    assert client.get("/v1/datasets").status_code == 200

    with get_sessionmaker()() as session:
        used = session.scalars(select(ApiKey.last_used_at)).all()

    assert len(used) == 1 and used[0] is not None


def test_openapi_declares_bearer_scheme_on_every_v1_operation(anonymous: TestClient) -> None:
    spec = anonymous.get("/openapi.json").json()

    schemes = spec["components"]["securitySchemes"]
    assert list(schemes.values()) == [
        {"type": "http", "scheme": "bearer", "description": schemes["HTTPBearer"]["description"]}
    ]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            # /metrics takes a key too by default (DENDRITE_METRICS_EXPOSURE=key)
            protected = path.startswith(("/v1/", "/v2/models")) or path == "/metrics"
            expected = [{"HTTPBearer": []}] if protected else None
            assert operation.get("security") == expected, f"{method} {path}"
            assert ("401" in operation["responses"]) == protected, f"{method} {path}"
    assert "429" in spec["paths"]["/v1/jobs"]["post"]["responses"]


def test_auth_disabled_acts_as_local_admin_and_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, client: TestClient
) -> None:
    upload_file(client, "concrete_data.csv", name="alices")
    monkeypatch.setenv("DENDRITE_AUTH_ENABLED", "false")
    get_settings.cache_clear()

    with caplog.at_level(logging.WARNING), TestClient(create_app()) as open_client:
        created = upload_file(open_client, "concrete_data.csv", name="local")
        listed = open_client.get("/v1/datasets").json()

    assert created.status_code == 201, created.text
    assert listed["total"] == 2  # the local admin sees everyone's
    assert any("authentication is OFF" in r.getMessage() for r in caplog.records)
    with get_sessionmaker()() as session:
        owner = session.scalar(select(Dataset.owner).where(Dataset.id == created.json()["id"]))
    assert owner == "local"


def test_auth_enabled_logs_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        create_app()

    assert not any("authentication is OFF" in r.getMessage() for r in caplog.records)


def test_keys_create_prints_a_working_key_last(anonymous: TestClient) -> None:
    result = CliRunner().invoke(cli, ["keys", "create", "dave"])

    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    token = lines[-1]
    assert token.startswith("dk_") and "shown" in lines[-2]
    response = anonymous.get("/v1/datasets", headers=bearer(token))
    assert response.status_code == 200, response.text


def test_keys_create_admin_key_sees_other_owners(anonymous: TestClient, client: TestClient) -> None:
    upload_file(client, "concrete_data.csv", name="concrete")

    result = CliRunner().invoke(cli, ["keys", "create", "ops", "--admin"])

    token = result.stdout.strip().splitlines()[-1]
    assert anonymous.get("/v1/datasets", headers=bearer(token)).json()["total"] == 1


def test_keys_create_with_bad_name_fails_with_a_message() -> None:
    result = CliRunner().invoke(cli, ["keys", "create", "no:colons"])

    assert result.exit_code == 1
    assert "not a valid owner name" in result.output


def test_keys_list_shows_keys_without_the_secret() -> None:
    token = create_key("erin")
    CliRunner().invoke(cli, ["keys", "create", "frank", "--admin"])

    result = CliRunner().invoke(cli, ["keys", "list"])

    assert result.exit_code == 0, result.output
    rows = result.stdout.strip().splitlines()
    assert rows[0].split() == ["id", "owner", "prefix", "admin", "created", "revoked"]
    erin = next(row for row in rows if " erin " in row)
    assert token[: keys.PREFIX_LENGTH] in erin and " no " in erin
    assert " yes " in next(row for row in rows if " frank " in row)
    assert token not in result.stdout


def test_keys_revoke_by_prefix_makes_the_key_fail(anonymous: TestClient) -> None:
    token = create_key("gina")

    result = CliRunner().invoke(cli, ["keys", "revoke", token[: keys.PREFIX_LENGTH]])

    assert result.exit_code == 0, result.output
    assert "revoked" in result.stdout and "gina" in result.stdout
    assert_unauthorized(anonymous.get("/v1/datasets", headers=bearer(token)))
    listed = CliRunner().invoke(cli, ["keys", "list"]).stdout
    assert next(row for row in listed.splitlines() if " gina " in row).split()[-1] != "-"


def test_keys_revoke_unknown_key_fails_with_a_message() -> None:
    result = CliRunner().invoke(cli, ["keys", "revoke", "dk_nothing"])

    assert result.exit_code == 1
    assert "no API key" in result.output
