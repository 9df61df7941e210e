"""Webhooks over the API, delivered by the app's own loop to a real HTTP receiver on loopback."""

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service import leases
from service.core.config import Settings, get_settings
from service.core.db import session_scope
from service.core.orm import JobStatus
from tests.api.conftest import Upload, assert_envelope, concrete_job
from tests.webhooks.receiver import Receiver, closed_port, receiving, verify


@pytest.fixture(autouse=True)
def quick_retries(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DENDRITE_WEBHOOK_POLL_INTERVAL", "0.05")
    monkeypatch.setenv("DENDRITE_WEBHOOK_RETRY_DELAY", "0.05")
    monkeypatch.setenv("DENDRITE_WEBHOOK_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("DENDRITE_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")  # the loopback receivers
    get_settings.cache_clear()
    yield


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from receiving()


def _submit(client: TestClient, upload: Upload, callback_url: str) -> dict[str, Any]:
    dataset = upload("concrete_data.csv")
    response = client.post("/v1/jobs", json=concrete_job(dataset["id"], callback_url=callback_url))
    assert response.status_code == 202, response.text
    return dict(response.json())


def _deliveries(client: TestClient, job_id: str, state: str) -> list[dict[str, Any]]:
    """The job's deliveries, once the first is in `state`."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = client.get(f"/v1/jobs/{job_id}/deliveries")
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()
        if found and found[0]["state"] == state:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no delivery of job {job_id} reached {state}: {found}")


def _end_as_worker(job_id: str, status: JobStatus, error: str | None = None) -> None:
    """A worker claims the job and records its outcome, as workers/tasks.py does."""
    with session_scope() as session:
        attempt = leases.claim(session, job_id, "w1@host")
        assert attempt is not None
    with session_scope() as session:
        assert leases.end(session, attempt, status, error)


def test_create_job_rejects_a_callback_url_that_is_not_http(
    client: TestClient, upload: Upload
) -> None:
    dataset = upload("concrete_data.csv")
    for url in ("ftp://example.com/hook", "file:///etc/passwd", "not a url"):
        response = client.post("/v1/jobs", json=concrete_job(dataset["id"], callback_url=url))
        assert_envelope(response, 422, "/callback_url")
    assert client.get("/v1/jobs").json()["total"] == 0


def test_create_job_rejects_a_callback_url_with_credentials(
    client: TestClient, upload: Upload
) -> None:
    dataset = upload("concrete_data.csv")
    for url in ("http://user:pass@example.com/hook", "https://token@example.com/hook"):
        response = client.post("/v1/jobs", json=concrete_job(dataset["id"], callback_url=url))
        body = assert_envelope(response, 422, "/callback_url")
        assert "credentials" in body["detail"]
    for url in ("gopher://127.0.0.1:6379/_FLUSHALL", "dict://127.0.0.1:11211/"):
        response = client.post("/v1/jobs", json=concrete_job(dataset["id"], callback_url=url))
        assert_envelope(response, 422, "/callback_url")
    assert client.get("/v1/jobs").json()["total"] == 0


def test_secret_stays_until_rotated_and_is_the_owners_own(
    client: TestClient, other_client: TestClient
) -> None:
    first = client.get("/v1/webhooks/secret")
    assert first.status_code == 200, first.text
    assert client.get("/v1/webhooks/secret").json() == first.json()
    assert other_client.get("/v1/webhooks/secret").json()["secret"] != first.json()["secret"]
    rotated = client.post("/v1/webhooks/secret/rotate")
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"] != first.json()["secret"]
    assert client.get("/v1/webhooks/secret").json() == rotated.json()


def test_cancelling_a_queued_job_posts_its_signed_final_state(
    client: TestClient, upload: Upload, receiver: Receiver
) -> None:
    job = _submit(client, upload, receiver.url)
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200

    [received] = receiver.wait_for(1)
    secret = client.get("/v1/webhooks/secret").json()["secret"]
    assert verify(secret, received)
    assert json.loads(received.body) == client.get(f"/v1/jobs/{job['id']}").json()
    assert json.loads(received.body)["status"] == "cancelled"
    assert received.headers["content-type"] == "application/json"
    [delivery] = _deliveries(client, job["id"], "delivered")
    assert received.headers["x-dendrite-delivery"] == delivery["id"]
    assert delivery["url"] == receiver.url
    assert [a["status_code"] for a in delivery["attempts"]] == [200]
    assert delivery["attempts"][0]["error"] is None


def test_a_job_ended_by_its_worker_is_posted_once(
    client: TestClient, upload: Upload, receiver: Receiver
) -> None:
    job = _submit(client, upload, receiver.url)
    assert _deliveries(client, job["id"], "waiting")[0]["attempts"] == []
    _end_as_worker(job["id"], JobStatus.failed, "the data had no rows left")

    [received] = receiver.wait_for(1)
    body = json.loads(received.body)
    assert (body["status"], body["error"]) == ("failed", "the data had no rows left")
    _deliveries(client, job["id"], "delivered")
    time.sleep(0.3)  # several more rounds of the delivery loop
    assert len(receiver.received) == 1


@pytest.fixture
def flaky_receiver() -> Iterator[Receiver]:
    yield from receiving(fail_first=2)


def test_a_receiver_that_fails_twice_gets_a_third_attempt(
    client: TestClient, upload: Upload, flaky_receiver: Receiver
) -> None:
    job = _submit(client, upload, flaky_receiver.url)
    client.post(f"/v1/jobs/{job['id']}/cancel")

    received = flaky_receiver.wait_for(3)
    assert [r.answered for r in received] == [500, 500, 200]
    assert [r.headers["x-dendrite-attempt"] for r in received] == ["1", "2", "3"]
    assert len({r.headers["x-dendrite-delivery"] for r in received}) == 1
    assert len({r.body for r in received}) == 1  # the same final state every time
    secret = client.get("/v1/webhooks/secret").json()["secret"]
    assert all(verify(secret, r) for r in received)
    [delivery] = _deliveries(client, job["id"], "delivered")
    attempts_made = delivery["attempts"]
    assert [a["number"] for a in attempts_made] == [1, 2, 3]
    assert [a["status_code"] for a in attempts_made] == [500, 500, 200]
    assert "500" in attempts_made[0]["error"] and attempts_made[2]["error"] is None
    assert attempts_made[0]["started_at"] < attempts_made[1]["started_at"]


def test_delivery_gives_up_after_the_last_attempt(client: TestClient, upload: Upload) -> None:
    job = _submit(client, upload, f"http://127.0.0.1:{closed_port()}/nobody-listens")
    client.post(f"/v1/jobs/{job['id']}/cancel")

    [delivery] = _deliveries(client, job["id"], "failed")
    assert len(delivery["attempts"]) == 3  # DENDRITE_WEBHOOK_MAX_ATTEMPTS
    assert all(a["status_code"] is None and a["error"] for a in delivery["attempts"])
    assert delivery["next_attempt_at"] is None


def test_another_owners_deliveries_are_not_found(
    client: TestClient, other_client: TestClient, upload: Upload
) -> None:
    job = _submit(client, upload, "http://127.0.0.1:9/hook")
    assert_envelope(other_client.get(f"/v1/jobs/{job['id']}/deliveries"), 404, "job_id")


def test_a_job_without_callback_url_has_no_deliveries(client: TestClient, upload: Upload) -> None:
    dataset = upload("concrete_data.csv")
    job = client.post("/v1/jobs", json=concrete_job(dataset["id"])).json()
    assert client.get(f"/v1/jobs/{job['id']}/deliveries").json() == []
