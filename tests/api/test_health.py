"""Liveness, readiness and the OpenAPI docs."""

import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.core import queue
from service.core.config import Settings, get_settings
from service.schemas import examples
from tests.api.conftest import upload_file


def test_healthz_returns_ok(client: TestClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_with_database_and_broker_returns_ready(client: TestClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ready",
        "checks": {"database": True, "broker": True, "artifacts": True, "free_space": True},
        "details": {},
    }


def test_readyz_with_unreachable_broker_returns_503(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Port 1 on localhost refuses connections at once.
    monkeypatch.setenv("DENDRITE_BROKER_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    queue.celery.cache_clear()

    response = client.get("/readyz")

    assert response.status_code == 503, response.text
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": True, "broker": False, "artifacts": True, "free_space": True},
        "details": {},
    }


def test_readyz_checks_the_s3_store(s3_store: Settings, client: TestClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200, response.text
    assert response.json()["checks"]["artifacts"] is True


def test_readyz_with_unreachable_artifact_store_returns_503(
    s3_store: Settings, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DENDRITE_ARTIFACTS_URL", f"s3://dendrite-missing-{uuid.uuid4().hex[:8]}")
    get_settings.cache_clear()

    response = client.get("/readyz")

    assert response.status_code == 503, response.text
    checks = response.json()["checks"]
    assert checks == {"database": True, "broker": True, "artifacts": False, "free_space": True}


def test_readyz_with_a_local_store_it_cannot_write_returns_503(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    occupied = tmp_path / "a-file"
    occupied.write_text("not a folder")
    monkeypatch.setenv("DENDRITE_ARTIFACTS_URL", str(occupied / "artifacts"))
    get_settings.cache_clear()

    response = client.get("/readyz")

    assert response.status_code == 503, response.text
    assert response.json()["checks"]["artifacts"] is False


def job_body_examples(schema: dict[str, Any], path: str) -> dict[str, Any]:
    body = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    return dict(body["examples"])


def test_readyz_with_less_free_space_than_the_minimum_returns_503_saying_where(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DENDRITE_MIN_FREE_BYTES", str(1 << 60))  # 1 EiB: more than any disk
    get_settings.cache_clear()

    response = client.get("/readyz")

    assert response.status_code == 503, response.text
    body = response.json()
    assert body["checks"] == {
        "database": True, "broker": True, "artifacts": True, "free_space": False
    }  # fmt: skip
    detail = body["details"]["free_space"]
    # The test's data directory holds all three, on one filesystem: it is named once.
    assert detail.startswith("the artifact store has ") and detail.count(" free, ") == 1
    assert "less than DENDRITE_MIN_FREE_BYTES" in detail


def test_readyz_free_space_check_off_with_zero(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DENDRITE_MIN_FREE_BYTES", "0")
    get_settings.cache_clear()

    response = client.get("/readyz")

    assert response.status_code == 200, response.text
    assert response.json()["checks"]["free_space"] is True


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/specs/validate"])
def test_openapi_shows_course_examples_for_the_job_body(client: TestClient, path: str) -> None:
    response = client.get("/openapi.json")

    assert response.status_code == 200
    shown = job_body_examples(response.json(), path)
    assert shown["concrete"]["value"] == examples.CONCRETE_REGRESSION
    assert shown["mnist"]["value"] == examples.MNIST_CLASSIFIER
    assert all(example["summary"] for example in shown.values())


def test_openapi_job_examples_are_valid_requests(client: TestClient) -> None:
    """Each example, as /docs shows it, is accepted once its dataset is uploaded by name."""
    for filename, name in [("concrete_data.csv", "concrete"), ("mnist_small.npz", "mnist"),
                           ("penguins.csv", "penguins")]:  # fmt: skip
        assert upload_file(client, filename, name=name).status_code == 201
    shown = job_body_examples(client.get("/openapi.json").json(), "/v1/jobs")

    for name, example in shown.items():
        response = client.post("/v1/jobs", json=example["value"])
        assert response.status_code == 202, f"{name}: {response.text}"


def test_openapi_documents_the_predict_bodies(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()

    content = schema["paths"]["/v1/models/{model_id}/predict"]["post"]["requestBody"]["content"]

    assert content["application/json"]["example"] == examples.CONCRETE_PREDICT
    assert content["text/csv"]["example"].startswith("Cement,")


def test_docs_returns_swagger_html(client: TestClient) -> None:
    response = client.get("/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in response.text and "/openapi.json" in response.text
