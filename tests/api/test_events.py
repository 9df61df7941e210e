"""GET /v1/jobs/{id}/events: the job's status changes and epochs as Server-Sent Events, written to
the test database as a worker writes them."""

import contextlib
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service import events as service_events
from service import leases
from service.core.config import Settings, get_settings
from service.core.db import session_scope
from service.core.orm import JobStatus
from tests.api.conftest import Upload, assert_envelope, concrete_job
from tests.sse import Event, events


@pytest.fixture(autouse=True)
def quick_polls(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DENDRITE_EVENTS_POLL_INTERVAL", "0.05")
    get_settings.cache_clear()


def read_all(client: TestClient, job_id: str, last_event_id: str | None = None) -> list[Event]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(events(response.iter_lines()))


class Worker:
    """Writes what a training worker writes, through the same use cases."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.attempt: leases.Attempt | None = None

    def claim(self) -> None:
        with session_scope() as session:
            self.attempt = leases.claim(session, self.job_id, "w1@host")
        assert self.attempt is not None

    def epoch(self, epoch: int) -> None:
        assert self.attempt is not None
        metrics = {"loss": 100.0 / epoch, "val_loss": 120.0 / epoch}
        with session_scope() as session:
            assert leases.record_epoch(session, self.attempt, epoch, metrics, 0.5)

    def end(self, status: JobStatus = JobStatus.succeeded) -> None:
        assert self.attempt is not None
        with session_scope() as session:
            assert leases.end(session, self.attempt, status)

    def hand_back(self) -> None:
        assert self.attempt is not None
        with session_scope() as session:
            assert leases.hand_back(session, self.attempt)


@pytest.fixture
def job(client: TestClient, upload: Upload) -> dict[str, Any]:
    dataset = upload("concrete_data.csv")
    response = client.post("/v1/jobs", json=concrete_job(dataset["id"]))
    assert response.status_code == 202, response.text
    return dict(response.json())


def test_stream_follows_a_job_live_until_it_ends(client: TestClient, job: dict[str, Any]) -> None:
    worker = Worker(job["id"])
    with client.stream("GET", f"/v1/jobs/{job['id']}/events") as response:
        stream = events(response.iter_lines())
        first = next(stream)
        assert (first.name, first.data["status"], first.id) == ("status", "queued", "0:queued:0")
        worker.claim()
        running = next(stream)
        assert (running.name, running.data["status"], running.id) == (
            "status",
            "running",
            "0:running:1",
        )
        worker.epoch(1)
        epoch = next(stream)
        assert (epoch.name, epoch.id) == ("epoch", "1:running:1")
        assert epoch.data == {
            "epoch": 1,
            "seconds": 0.5,
            "metrics": {"loss": 100.0, "val_loss": 120.0},
        }
        worker.epoch(2)
        worker.epoch(3)
        worker.end()
        rest = list(stream)  # the stream ends by itself after the final status
    assert [(e.name, e.id) for e in rest] == [
        ("epoch", "2:running:1"),
        ("epoch", "3:running:1"),
        ("status", "3:succeeded:1"),
    ]
    assert rest[-1].data == client.get(f"/v1/jobs/{job['id']}").json()


def test_a_finished_job_replays_its_epochs_then_its_final_status(
    client: TestClient, job: dict[str, Any]
) -> None:
    worker = Worker(job["id"])
    worker.claim()
    for epoch in (1, 2, 3):
        worker.epoch(epoch)
    worker.end(JobStatus.failed)
    sent = read_all(client, job["id"])
    assert [(e.name, e.id) for e in sent] == [
        ("epoch", "1::0"),
        ("epoch", "2::0"),
        ("epoch", "3::0"),
        ("status", "3:failed:1"),
    ]
    assert [e.data["epoch"] for e in sent[:3]] == [1, 2, 3]


def test_last_event_id_resumes_without_duplicates_or_gaps(
    client: TestClient, job: dict[str, Any]
) -> None:
    worker = Worker(job["id"])
    with client.stream("GET", f"/v1/jobs/{job['id']}/events") as response:
        stream = events(response.iter_lines())
        next(stream)  # queued
        worker.claim()
        worker.epoch(1)
        seen = [next(stream), next(stream)]  # running, epoch 1; then the client drops
    assert [e.id for e in seen] == ["0:running:1", "1:running:1"]

    worker.epoch(2)
    worker.hand_back()  # a worker shutting down puts it back in the queue...
    worker.claim()  # ...and another takes it
    worker.epoch(3)
    worker.end()
    resumed = read_all(client, job["id"], last_event_id=seen[-1].id)
    # What happened in between is in the past: the client gets the epochs it missed, then the
    # status as it is now.
    assert [(e.name, e.id) for e in resumed] == [
        ("epoch", "2:running:1"),
        ("epoch", "3:running:1"),
        ("status", "3:succeeded:1"),
    ]
    assert [e.data["epoch"] for e in resumed[:2]] == [2, 3]
    assert resumed[-1].data["status"] == "succeeded"

    # A client that already saw the end is told not to reconnect.
    done = client.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": resumed[-1].id})
    assert done.status_code == 204


def test_a_long_history_arrives_whole_before_the_final_status(
    client: TestClient, job: dict[str, Any]
) -> None:
    worker = Worker(job["id"])
    worker.claim()
    with session_scope() as session:
        assert worker.attempt is not None
        for epoch in range(1, service_events.BATCH + 21):  # more than one read's batch
            leases.record_epoch(session, worker.attempt, epoch, {"loss": 1.0}, 0.1)
    worker.end()
    sent = read_all(client, job["id"], last_event_id="0:running:1")
    assert [e.data["epoch"] for e in sent[:-1]] == list(range(1, service_events.BATCH + 21))
    assert sent[-1].name == "status" and sent[-1].data["status"] == "succeeded"


def test_events_of_another_owners_job_are_not_found(
    client: TestClient, other_client: TestClient, job: dict[str, Any]
) -> None:
    assert_envelope(other_client.get(f"/v1/jobs/{job['id']}/events"), 404, "job_id")
    assert_envelope(client.get("/v1/jobs/no-such-job/events"), 404, "job_id")


def test_a_last_event_id_this_stream_never_sent_is_refused(
    client: TestClient, job: dict[str, Any]
) -> None:
    for bad in ("7", "1:sleeping:1", "-1:running:1", "1:running"):
        response = client.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": bad})
        assert_envelope(response, 422, "Last-Event-ID")


def test_streams_past_the_owners_limit_get_a_429_and_slots_come_back(
    client: TestClient,
    other_client: TestClient,
    job: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DENDRITE_MAX_EVENT_STREAMS_PER_OWNER", "2")
    get_settings.cache_clear()
    url = f"/v1/jobs/{job['id']}/events"
    with client.stream("GET", url) as first, client.stream("GET", url) as second:
        followed = [events(response.iter_lines()) for response in (first, second)]
        assert [next(stream).name for stream in followed] == ["status", "status"]
        assert service_events.SLOTS.held("alice") == 2
        refused = client.get(url)
        body = assert_envelope(refused, 429)
        assert "DENDRITE_MAX_EVENT_STREAMS_PER_OWNER" in body["detail"]
        assert int(refused.headers["Retry-After"]) > 0
        # Another owner's streams are theirs to count.
        assert_envelope(other_client.get(url), 404, "job_id")
    # Closed streams give their slots back.
    assert service_events.SLOTS.held("alice") == 0
    with client.stream("GET", url) as again:
        assert again.status_code == 200


def test_streams_of_one_job_share_one_reader(
    client: TestClient, job: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    streams = 8
    monkeypatch.setenv("DENDRITE_MAX_EVENT_STREAMS_PER_OWNER", str(streams))
    get_settings.cache_clear()
    reads_with_running: list[str] = []
    read = service_events.read

    def counted(job_id: str, cursor: service_events.Cursor) -> service_events.Batch:
        batch = read(job_id, cursor)
        if any(e.id.endswith(":running:1") for e in batch.events):
            reads_with_running.append(job_id)
        return batch

    monkeypatch.setattr(service_events, "read", counted)
    url = f"/v1/jobs/{job['id']}/events"
    with contextlib.ExitStack() as stack:
        opened = [stack.enter_context(client.stream("GET", url)) for _ in range(streams)]
        followed = [events(response.iter_lines()) for response in opened]
        assert all(next(stream).id == "0:queued:0" for stream in followed)
        time.sleep(0.5)  # every stream is now waiting on the job's shared reader
        worker = Worker(job["id"])
        worker.claim()
        assert all(next(stream).id == "0:running:1" for stream in followed)
    # One read served them all (without sharing: one read per stream).
    assert len(reads_with_running) < streams // 2, reads_with_running
