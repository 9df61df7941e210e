"""Faults injected into a real stack: PostgreSQL, a redis-server of this module's own, an API and
two workers. A worker SIGKILLed mid-epoch, a worker sent SIGTERM, the broker restarted without
persistence: every job still succeeds, with each of its epochs in its history exactly once.

The tests share the stack and run in order; each starts the workers it needs.
"""

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.e2e.conftest import DENDRITE, Service, _env, free_port, require_stack
from tests.e2e.flows import concrete_job, submit, upload, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.stack]

DATABASE = "dendrite_e2e_faults"
EPOCHS = 60  # a few seconds of training


class RedisServer:
    """A redis-server without persistence: killing it loses every message it held."""

    def __init__(self, port: int, logs: Path) -> None:
        self.port, self.logs = port, logs
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            shutil.which("redis-server") or "/usr/bin/redis-server",
            "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--daemonize", "no",
        ]  # fmt: skip
        with open(self.logs / "redis.log", "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                import redis

                if redis.Redis(port=self.port, socket_timeout=1).ping():
                    return
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.1)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


class Stack:
    def __init__(self, service: Service, redis: RedisServer) -> None:
        self.service, self.redis = service, redis
        self.client = service.client
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self._started = 0

    def start_worker(self) -> str:
        self._started += 1
        name = f"faults-{self._started}"
        self.workers[name] = self.service.start(name, "worker", "--name", f"{name}@%h")
        return name

    def alive(self) -> list[str]:
        return [name for name, process in self.workers.items() if process.poll() is None]

    def worker_of(self, job: dict[str, Any]) -> str:
        return str(job["worker"]).split("@", 1)[0]

    def log(self, name: str) -> str:
        return (self.service.logs / f"{name}.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    database_url = require_stack(DATABASE, redis_url=None)
    if shutil.which("redis-server") is None and not Path("/usr/bin/redis-server").exists():
        if os.environ.get("CI") == "true":
            pytest.fail("CI needs redis-server for the fault tests")
        pytest.skip("redis-server is not installed")
    root = tmp_path_factory.mktemp("faults")
    redis = RedisServer(free_port(), root)
    redis.start()
    env = _env(
        DENDRITE_DATA_DIR=str(root / "data"),
        DENDRITE_DATABASE_URL=database_url,
        DENDRITE_BROKER_URL=f"redis://127.0.0.1:{redis.port}/0",
        DENDRITE_HEARTBEAT_INTERVAL="0.5",
        DENDRITE_STALE_AFTER="4",
        DENDRITE_REDISPATCH_AFTER="10",
        DENDRITE_CHECKPOINT_INTERVAL="0.5",
    )
    port = free_port()
    service = Service(f"http://127.0.0.1:{port}", env, root)
    subprocess.run([*DENDRITE, "migrate"], env=env, check=True, capture_output=True)
    service.use_new_key()
    stack = Stack(service, redis)
    stack.start_worker()
    stack.start_worker()
    service.start("api", "api", "--port", str(port))
    try:
        for _ in service.serve():
            yield stack
    finally:
        redis.kill()


def _training(client: httpx2.Client, job_id: str, epoch: int) -> dict[str, Any]:
    """The job once it is running and has trained `epoch` epochs."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = dict(client.get(f"/v1/jobs/{job_id}").json())
        if job["status"] == "running" and job["progress"]["epoch"] >= epoch:
            return job
        assert job["status"] in ("queued", "running"), job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not reach epoch {epoch}")


def _epochs(client: httpx2.Client, job_id: str) -> list[int]:
    history = client.get(f"/v1/jobs/{job_id}/history").json()
    return [row["epoch"] for row in history["epochs"]]


def test_job_of_a_worker_killed_mid_epoch_finishes_on_the_other(faults: Stack) -> None:
    client = faults.client
    dataset = upload(client, "concrete_data.csv", "faults-kill")
    job = submit(client, concrete_job(dataset["id"], epochs=EPOCHS))
    running = _training(client, job["id"], epoch=10)
    victim = faults.worker_of(running)
    assert len(faults.alive()) == 2, "the test needs a second worker to take over"
    killed_at = time.monotonic()
    os.killpg(faults.workers[victim].pid, signal.SIGKILL)  # the worker and its pool process
    faults.workers[victim].wait(timeout=10)

    done = wait_for(client, job["id"], timeout=120)
    recovered_in = time.monotonic() - killed_at
    assert done["status"] == "succeeded", faults.service.log_text()
    rescuer = faults.worker_of(done)
    assert rescuer != victim and done["attempts"] == 2
    assert _epochs(client, job["id"]) == list(range(1, EPOCHS + 1))
    assert f"job {job['id']} resumes after epoch" in faults.log(rescuer)
    print(f"killed at epoch {running['progress']['epoch']}; finished {recovered_in:.1f} s later")


def test_sigterm_hands_the_running_job_back(faults: Stack) -> None:
    client = faults.client
    while len(faults.alive()) < 2:  # one to stop, one to take the job over
        faults.start_worker()
    dataset = upload(client, "concrete_data.csv", "faults-term")
    job = submit(client, concrete_job(dataset["id"], epochs=EPOCHS))
    running = _training(client, job["id"], epoch=10)
    name = faults.worker_of(running)
    worker = faults.workers[name]
    signalled_at = time.monotonic()
    worker.send_signal(signal.SIGTERM)  # the main process only, as `docker stop` does
    worker.wait(timeout=60)
    exited_in = time.monotonic() - signalled_at

    handed = client.get(f"/v1/jobs/{job['id']}").json()
    assert handed["status"] == "queued" or handed["worker"] != running["worker"], handed
    assert f"job {job['id']} handed back" in faults.log(name)
    done = wait_for(client, job["id"], timeout=120)
    assert done["status"] == "succeeded", faults.service.log_text()
    assert done["attempts"] == 1  # a clean hand-back does not count as a failed attempt
    assert _epochs(client, job["id"]) == list(range(1, EPOCHS + 1))
    print(f"SIGTERM at epoch {running['progress']['epoch']}: worker exited in {exited_in:.1f} s")


def test_jobs_queued_when_the_broker_restarts_all_complete(faults: Stack) -> None:
    client = faults.client
    if not faults.alive():
        faults.start_worker()
    dataset = upload(client, "concrete_data.csv", "faults-broker")
    queued = [submit(client, concrete_job(dataset["id"], epochs=10)) for _ in range(3)]
    _training(client, queued[0]["id"], epoch=1)
    waiting = [j for j in queued if client.get(f"/v1/jobs/{j['id']}").json()["status"] == "queued"]
    assert waiting, "some jobs must wait in the broker when it goes down"
    faults.redis.kill()  # no persistence: the queued messages are gone
    time.sleep(1)
    restarted_at = time.monotonic()
    faults.redis.start()

    for job in queued:
        done = wait_for(client, job["id"], timeout=180)
        assert done["status"] == "succeeded", faults.service.log_text()
        assert _epochs(client, job["id"]) == list(range(1, 11))
    assert "lost by the broker; sent again" in faults.log("api")
    print(f"{len(waiting)} lost messages; all done {time.monotonic() - restarted_at:.1f} s later")
