"""Fair share on a real `dendrite serve` (SQLite, the on-disk broker, one worker: one job slot).

Alice queues a backlog; Bob then submits one job. Bob's job must start in the next free slot,
after Alice's running job, not after her whole backlog (the broker's queue alone is FIFO).
"""

import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx2
import pytest

from tests.e2e.conftest import DENDRITE, Service, free_port, service_env
from tests.e2e.flows import concrete_job, submit, upload, wait_for

pytestmark = pytest.mark.e2e

BACKLOG = 4


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Service]:
    port = free_port()
    # One slot: with two, the second could take alice's next job before bob submits (a race).
    env = service_env(DENDRITE_DATA_DIR=str(tmp_path / "data"), DENDRITE_EMBEDDED_CONCURRENCY="1")
    service = Service(f"http://127.0.0.1:{port}", env, tmp_path)
    service.start("serve", "serve", "--port", str(port))
    yield from service.serve()


def _client(service: Service, owner: str) -> httpx2.Client:
    created = subprocess.run(
        [*DENDRITE, "keys", "create", owner], env=service.env, check=True, capture_output=True
    )
    key = created.stdout.decode().strip().splitlines()[-1]
    return httpx2.Client(
        base_url=service.base_url, timeout=60, headers={"Authorization": f"Bearer {key}"}
    )


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_second_owner_runs_in_the_next_slot_not_after_the_backlog(served: Service) -> None:
    with _client(served, "alice") as alice, _client(served, "bob") as bob:
        alices_data = upload(alice, "concrete_data.csv", "concrete")["id"]
        bobs_data = upload(bob, "concrete_data.csv", "concrete")["id"]
        backlog = [submit(alice, concrete_job(alices_data, epochs=2))["id"] for _ in range(BACKLOG)]
        running = wait_for(alice, backlog[0], ("running", "succeeded", "failed"), timeout=180)
        assert running["status"] != "failed", running["error"]

        bobs = submit(bob, concrete_job(bobs_data, epochs=2))["id"]

        ended = {job_id: wait_for(alice, job_id, timeout=300) for job_id in backlog}
        ended[bobs] = wait_for(bob, bobs, timeout=300)
    assert all(job["status"] == "succeeded" for job in ended.values()), served.log_text()
    order = sorted(ended, key=lambda job_id: _moment(ended[job_id]["started_at"]))
    position = order.index(bobs) + 1
    wait = _moment(ended[bobs]["started_at"]) - _moment(ended[bobs]["created_at"])
    print(
        f"bob's job started {position} of {len(order)}, {wait.total_seconds():.1f} s after submit"
    )
    assert order[0] == backlog[0]
    assert position == 2  # right after alice's running job; then her backlog, in order
    assert order[2:] == backlog[1:]
