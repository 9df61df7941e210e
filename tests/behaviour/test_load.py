"""Load in embedded mode (SQLite WAL): 50 concurrent clients poll jobs and upload small datasets
while two jobs train on two workers. Zero errors, and the database is never locked.

The figures (requests per second, p50, p99) are printed, never asserted.
"""

import asyncio
from collections.abc import Iterator

import pytest

from tests.behaviour.load import run_load
from tests.e2e.conftest import Service, free_port, service_env
from tests.e2e.flows import concrete_job, submit, upload, wait_for

# In the default run. Uploads used to wait out SQLite's 30 s timeout here: first writers starved by
# newer ones (fixed by service/core/sqlite_writes.py), then a write turn held while the request
# waited for a pooled thread (fixed by service.api.deps.UnitOfWorkRoute).
# Alone: ./scripts/test -m load
pytestmark = [pytest.mark.e2e, pytest.mark.load]

CLIENTS = 50
SECONDS = 15.0


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """`dendrite serve` plus a second worker on the same data directory (on-disk broker)."""
    root = tmp_path_factory.mktemp("load")
    port = free_port()
    service = Service(
        f"http://127.0.0.1:{port}", service_env(DENDRITE_DATA_DIR=str(root / "data")), root
    )
    service.use_new_key()
    service.start("serve", "serve", "--port", str(port))
    service.start("worker-2", "worker", "--name", "load-2@%h")
    yield from service.serve()


def test_fifty_clients_while_two_jobs_train_get_no_errors(two_workers: Service) -> None:
    client = two_workers.client
    upload(client, "concrete_data.csv", "concrete")
    training = [submit(client, concrete_job("concrete", epochs=300)) for _ in range(2)]
    ids = [job["id"] for job in training]
    states = [wait_for(client, job_id, ("running", "succeeded"))["status"] for job_id in ids]
    assert states == ["running", "running"], "both jobs must train while the load runs"
    headers = {"Authorization": client.headers["Authorization"]}

    report = asyncio.run(run_load(two_workers.base_url, headers, ids, CLIENTS, SECONDS))
    print(f"\nload ({CLIENTS} clients, 2 jobs training): {report.summary()}")

    assert report.requests > CLIENTS
    assert report.errors == [], report.errors[:10]
    for job_id in ids:
        assert wait_for(client, job_id, timeout=300)["status"] == "succeeded"
    logs = " ".join(p.read_text(errors="replace") for p in two_workers.logs.glob("*.log"))
    assert "database is locked" not in logs
