"""Event streams against a real `dendrite api` with authentication on: an owner's streams past the
limit get a 429, and a stream ends once its API key is revoked (`dendrite keys revoke`, from
another process)."""

import contextlib
import time
from collections.abc import Iterator

import httpx2
import pytest

from tests.api.conftest import bearer, concrete_job
from tests.api.live import Server, running_api
from tests.conftest import DATA
from tests.sse import events

LIMIT = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = {
        "auth_enabled": "true",
        "max_event_streams_per_owner": str(LIMIT),
        "events_key_check_interval": "0.5",
        "events_poll_interval": "0.1",
    }
    with running_api(tmp_path_factory.mktemp("streams"), **settings) as live:
        yield live


def _queued_job(server: Server, token: str) -> str:
    with httpx2.Client(base_url=server.url, headers=bearer(token), timeout=30) as client:
        csv = (DATA / "concrete_data.csv").read_bytes()
        dataset = client.post("/v1/datasets", files={"file": ("c.csv", csv, "text/csv")})
        assert dataset.status_code == 201, dataset.text
        body = concrete_job(dataset.json()["id"])
        job = client.post("/v1/jobs", json=body)  # no worker runs: it stays queued
        assert job.status_code == 202, job.text
        return str(job.json()["id"])


def test_streams_past_the_limit_get_a_429_and_a_revoked_keys_streams_end(
    server: Server,
) -> None:
    token = server.cli("keys", "create", "alice")
    job_id = _queued_job(server, token)
    url = f"{server.url}/v1/jobs/{job_id}/events"
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(
            httpx2.Client(
                headers=bearer(token), timeout=30, limits=httpx2.Limits(max_connections=10)
            )
        )
        opened = [stack.enter_context(client.stream("GET", url)) for _ in range(LIMIT)]
        followed = [events(response.iter_lines()) for response in opened]
        assert [next(stream).data["status"] for stream in followed] == ["queued"] * LIMIT

        refused = client.get(url)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"] == "too_many_requests"
        assert int(refused.headers["Retry-After"]) > 0

        server.cli("keys", "revoke", token)
        started = time.monotonic()
        for stream in followed:
            assert list(stream) == []  # nothing more: the stream ends
        ended_after = time.monotonic() - started
    assert ended_after < 30
    assert httpx2.get(url, headers=bearer(token), timeout=10).status_code == 401
