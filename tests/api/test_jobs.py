"""POST/GET /v1/jobs over HTTP: submit, read, list, history, cancel, idempotency, the broker."""

import base64
import json
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.core.config import Settings, get_settings
from service.core.db import get_sessionmaker
from service.core.orm import Job
from service.main import create_app
from tests.api.conftest import Upload, assert_envelope, concrete_job, upload_file

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@pytest.fixture
def concrete(upload: Upload) -> dict[str, Any]:
    return dict(upload("concrete_data.csv", name="concrete"))


def submit(client: TestClient, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = client.post("/v1/jobs", json=body, headers=headers)
    assert response.status_code == 202, response.text
    return dict(response.json())


def broker_messages(settings: Settings) -> list[dict[str, Any]]:
    """Messages waiting in the embedded (kombu filesystem) broker's queue folder."""
    folder = Path(settings.broker_dir) / "queue"
    return [json.loads(path.read_bytes()) for path in sorted(folder.glob("*")) if path.is_file()]


def test_submit_concrete_job_returns_202_queued_with_defaults(
    client: TestClient, concrete: dict[str, Any]
) -> None:
    body = concrete_job("concrete")
    del body["training"]["seed"], body["training"]["loss"]

    response = client.post("/v1/jobs", json=body)

    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert (job["status"], job["task"], job["dataset_id"]) == (
        "queued",
        "regression",
        concrete["id"],
    )
    assert job["progress"] == {"epoch": 0, "epochs": 100}
    assert (job["model_id"], job["started_at"], job["finished_at"], job["error"]) == (
        None, None, None, None,
    )  # fmt: skip
    echoed = job["request"]
    assert echoed["dataset_id"] == concrete["id"]
    assert echoed["features"] is None and echoed["device"] == "auto"
    assert echoed["preprocessing"] == {"normalize": True, "missing": "error"}
    assert echoed["network"]["output_activation"] == "linear"
    assert echoed["training"]["loss"] == "mean_squared_error"
    assert echoed["training"]["metrics"] == ["mae"]
    assert echoed["training"]["test_split"] == 0.0
    assert isinstance(echoed["training"]["seed"], int) and 0 <= echoed["training"]["seed"] < 2**31


def test_submit_job_keeps_given_seed(client: TestClient, concrete: dict[str, Any]) -> None:
    job = submit(client, concrete_job("concrete"))

    assert job["request"]["training"]["seed"] == 42


def test_submit_job_sends_its_id_to_the_training_queue(
    client: TestClient, concrete: dict[str, Any], settings: Settings
) -> None:
    assert broker_messages(settings) == []

    job = submit(client, concrete_job("concrete"))

    messages = broker_messages(settings)
    assert len(messages) == 1
    message = messages[0]
    assert message["headers"]["task"] == "training.run_job"
    assert message["properties"]["delivery_info"]["routing_key"] == "training"
    args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    assert args == [job["id"]]


def test_submit_gpu_job_goes_to_the_gpu_queue(
    client: TestClient, concrete: dict[str, Any], settings: Settings
) -> None:
    submit(client, concrete_job("concrete", device="gpu"))

    [message] = broker_messages(settings)
    assert message["properties"]["delivery_info"]["routing_key"] == "training-gpu"


def test_submit_invalid_job_queues_nothing(
    client: TestClient, concrete: dict[str, Any], settings: Settings
) -> None:
    response = client.post("/v1/jobs", json=concrete_job("concrete", target="nope"))

    assert_envelope(response, 422, field="/target")
    assert broker_messages(settings) == []
    assert client.get("/v1/jobs").json()["total"] == 0


def test_submit_job_commits_before_responding(client: TestClient, concrete: dict[str, Any]) -> None:
    """A client that reads the job right after the 202 must find it."""
    app = create_app()
    counted: list[int] = []

    async def check_on_response(scope: Any, receive: Any, send: Send) -> None:
        async def send_and_count(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                with get_sessionmaker()() as session:
                    counted.append(session.scalar(select(func.count()).select_from(Job)) or 0)
            await send(message)

        await app(scope, receive, send_and_count)

    key = {"Authorization": client.headers["Authorization"]}
    with TestClient(check_on_response, headers=key) as counting_client:
        response = counting_client.post("/v1/jobs", json=concrete_job("concrete"))

    assert response.status_code == 202, response.text
    assert counted == [1]


def test_get_job_returns_the_submitted_job(client: TestClient, concrete: dict[str, Any]) -> None:
    job = submit(client, concrete_job("concrete"))

    response = client.get(f"/v1/jobs/{job['id']}")

    assert response.status_code == 200, response.text
    read = response.json()
    assert read["id"] == job["id"] and read["status"] == "queued"
    assert read["request"] == job["request"]
    assert read["created_at"] == job["created_at"]


def test_get_job_unknown_returns_404_envelope(client: TestClient) -> None:
    body = assert_envelope(client.get("/v1/jobs/nope"), 404, field="job_id")
    assert "nope" in body["detail"]


def test_list_jobs_filters_by_status(client: TestClient, concrete: dict[str, Any]) -> None:
    kept = submit(client, concrete_job("concrete"))
    cancelled = submit(client, concrete_job("concrete"))
    client.post(f"/v1/jobs/{cancelled['id']}/cancel")

    every = client.get("/v1/jobs").json()
    queued = client.get("/v1/jobs", params={"status": "queued"}).json()
    ended = client.get("/v1/jobs", params={"status": "cancelled"}).json()
    succeeded = client.get("/v1/jobs", params={"status": "succeeded"}).json()

    assert every["total"] == 2
    assert {job["id"] for job in every["items"]} == {kept["id"], cancelled["id"]}
    assert [job["id"] for job in queued["items"]] == [kept["id"]] and queued["total"] == 1
    assert [job["id"] for job in ended["items"]] == [cancelled["id"]] and ended["total"] == 1
    assert (succeeded["items"], succeeded["total"]) == ([], 0)


def test_list_jobs_unknown_status_returns_422(client: TestClient) -> None:
    body = assert_envelope(client.get("/v1/jobs", params={"status": "done"}), 422, field="status")
    assert "queued" in body["detail"]


def test_get_history_of_queued_job_is_empty(client: TestClient, concrete: dict[str, Any]) -> None:
    job = submit(client, concrete_job("concrete"))

    response = client.get(f"/v1/jobs/{job['id']}/history")

    assert response.status_code == 200, response.text
    assert response.json() == {"job_id": job["id"], "epochs": [], "total": 0}


def test_get_history_unknown_job_returns_404(client: TestClient) -> None:
    assert_envelope(client.get("/v1/jobs/nope/history"), 404, field="job_id")


def test_cancel_queued_job_returns_cancelled(client: TestClient, concrete: dict[str, Any]) -> None:
    job = submit(client, concrete_job("concrete"))

    response = client.post(f"/v1/jobs/{job['id']}/cancel")

    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["finished_at"] is not None and cancelled["error"]
    assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"


def test_cancel_cancelled_job_returns_409(client: TestClient, concrete: dict[str, Any]) -> None:
    job = submit(client, concrete_job("concrete"))
    client.post(f"/v1/jobs/{job['id']}/cancel")

    body = assert_envelope(client.post(f"/v1/jobs/{job['id']}/cancel"), 409)
    assert "cancelled" in body["detail"]


def test_cancel_unknown_job_returns_404(client: TestClient) -> None:
    assert_envelope(client.post("/v1/jobs/nope/cancel"), 404, field="job_id")


def test_submit_with_same_idempotency_key_and_body_returns_same_job(
    client: TestClient, concrete: dict[str, Any], settings: Settings
) -> None:
    first = submit(client, concrete_job("concrete"), **{"Idempotency-Key": "k-1"})

    again = client.post(
        "/v1/jobs", json=concrete_job("concrete"), headers={"Idempotency-Key": "k-1"}
    )

    assert again.status_code == 202, again.text
    assert again.json()["id"] == first["id"]
    assert again.headers["location"] == f"/v1/jobs/{first['id']}"
    assert client.get("/v1/jobs").json()["total"] == 1
    assert len(broker_messages(settings)) == 1


def test_submit_with_same_idempotency_key_and_other_body_returns_409(
    client: TestClient, concrete: dict[str, Any]
) -> None:
    submit(client, concrete_job("concrete"), **{"Idempotency-Key": "k-1"})

    response = client.post(
        "/v1/jobs", json=concrete_job("concrete", device="cpu"), headers={"Idempotency-Key": "k-1"}
    )

    body = assert_envelope(response, 409, field="Idempotency-Key")
    assert "Idempotency-Key" in body["detail"]
    assert client.get("/v1/jobs").json()["total"] == 1


def test_submit_with_other_idempotency_keys_creates_two_jobs(
    client: TestClient, concrete: dict[str, Any]
) -> None:
    first = submit(client, concrete_job("concrete"), **{"Idempotency-Key": "k-1"})
    second = submit(client, concrete_job("concrete"), **{"Idempotency-Key": "k-2"})

    assert first["id"] != second["id"]


def test_submit_with_longest_idempotency_key_replays_the_job(
    client: TestClient, concrete: dict[str, Any]
) -> None:
    """The stored key is scoped to its owner ("owner:key") and must still fit its column."""
    key = "k" * 255
    first = submit(client, concrete_job("concrete"), **{"Idempotency-Key": key})
    again = submit(client, concrete_job("concrete"), **{"Idempotency-Key": key})
    other = submit(client, concrete_job("concrete"), **{"Idempotency-Key": key[:-1] + "x"})

    assert again["id"] == first["id"] != other["id"]


@pytest.fixture
def one_active_job_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DENDRITE_MAX_ACTIVE_JOBS_PER_OWNER", "1")
    get_settings.cache_clear()


def test_submit_over_active_job_limit_returns_429_with_retry_after(
    client: TestClient, concrete: dict[str, Any], one_active_job_allowed: None, settings: Settings
) -> None:
    submit(client, concrete_job("concrete"))

    response = client.post("/v1/jobs", json=concrete_job("concrete"))

    body = assert_envelope(response, 429)
    assert body["error"] == "too_many_requests"
    assert int(response.headers["retry-after"]) > 0
    assert "limit 1" in body["detail"] and "cancel" in body["detail"]
    assert client.get("/v1/jobs").json()["total"] == 1
    assert len(broker_messages(settings)) == 1


def test_submit_after_active_job_ends_is_accepted_again(
    client: TestClient, concrete: dict[str, Any], one_active_job_allowed: None
) -> None:
    first = submit(client, concrete_job("concrete"))
    assert client.post("/v1/jobs", json=concrete_job("concrete")).status_code == 429

    client.post(f"/v1/jobs/{first['id']}/cancel")

    submit(client, concrete_job("concrete"))


def test_submit_at_active_job_limit_still_replays_an_idempotent_request(
    client: TestClient, concrete: dict[str, Any], one_active_job_allowed: None
) -> None:
    first = submit(client, concrete_job("concrete"), **{"Idempotency-Key": "k-1"})

    again = submit(client, concrete_job("concrete"), **{"Idempotency-Key": "k-1"})

    assert again["id"] == first["id"]


def test_submit_at_another_owners_active_job_limit_is_accepted(
    client: TestClient,
    other_client: TestClient,
    concrete: dict[str, Any],
    one_active_job_allowed: None,
) -> None:
    submit(client, concrete_job("concrete"))
    upload_file(other_client, "concrete_data.csv", name="concrete")

    submit(other_client, concrete_job("concrete"))
