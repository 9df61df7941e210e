"""Faults injected into a real stack: PostgreSQL, a redis-server of this module's own, an API and
two workers, with the default heartbeat settings. A worker SIGKILLed mid-epoch (the whole worker,
only its pool process, or both workers before a new one starts), a worker sent SIGTERM, the broker
restarted without persistence, a job past the workers' memory ceiling: every job ends as it should,
with each of its epochs in its history exactly once, and no message left unacknowledged in Redis.

The recovery tests print the seconds from the kill to the job running again (its attempt 2). The
tests share the stack and run in order; each starts the workers it needs.
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
import redis as redis_client

from tests.e2e.conftest import (
    DENDRITE,
    Service,
    free_port,
    require_stack,
    service_env,
    wait_for_worker,
)
from tests.e2e.flows import concrete_job, submit, upload, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.stack]

DATABASE = "dendrite_e2e_faults"
EPOCHS = 1500  # a few seconds of training (an epoch of the concrete job takes a few ms)
KILL_AT = 200  # epochs trained before a fault: past the first checkpoints (0.5 s apart)
# Generous bounds (the figures are printed): before, every case took 125-130 s.
POOL_PROCESS_REQUEUED_WITHIN = 5.0
WORKER_REQUEUED_WITHIN = 45.0
MEMORY_CEILING_MB = 1500  # a warm pool process holds about 800 MiB; the conv job below 2.3 GiB


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
                if self.client().ping():
                    return
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.1)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def client(self) -> redis_client.Redis:
        return redis_client.Redis(port=self.port, socket_timeout=1)

    def unacked(self) -> int:
        """Messages delivered to a worker and not acknowledged (kombu's Redis transport)."""
        return int(self.client().hlen("unacked"))

    def settled(self, timeout: float = 60) -> bool:
        """Whether, within `timeout`, no message is left unacknowledged: a live worker may hold
        one briefly (reserved for a pool process that is starting); a dead worker's message
        would stay until the visibility timeout (7 h)."""
        deadline = time.monotonic() + timeout
        while self.unacked():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)
        return True

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

    def start_worker(self, *options: str, wait: bool = False, **env: str) -> str:
        self._started += 1
        name = f"faults-{self._started}"
        base_env = self.service.env
        self.service.env = {**base_env, **env}
        try:
            self.workers[name] = self.service.start(
                name, "worker", "--name", f"{name}@%h", *options
            )
        finally:
            self.service.env = base_env
        if wait:
            wait_for_worker(self.service, name, name)
        return name

    def stop_workers(self) -> None:
        for name in self.alive():
            self.workers[name].terminate()
        for process in self.workers.values():
            process.wait(timeout=120)

    def alive(self) -> list[str]:
        return [name for name, process in self.workers.items() if process.poll() is None]

    def worker_of(self, job: dict[str, Any]) -> str:
        return str(job["worker"]).split("@", 1)[0]

    def pool_processes(self, name: str) -> list[int]:
        """The pids of the worker's pool processes (its main process' children)."""
        parent = str(self.workers[name].pid)
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == parent:
                children.append(int(stat.parent.name))
        return children

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
    env = service_env(
        DENDRITE_DATA_DIR=str(root / "data"),
        DENDRITE_DATABASE_URL=database_url,
        DENDRITE_BROKER_URL=f"redis://127.0.0.1:{redis.port}/0",
        # The heartbeat and staleness are the defaults, and so is recovery's period (a quarter
        # of the smaller of stale_after and redispatch_after: 4 s): the recovery times are real.
        DENDRITE_REDISPATCH_AFTER="16",
        DENDRITE_CHECKPOINT_INTERVAL="0.5",
        DENDRITE_MAX_TRAINING_MEMORY_MB="65536",  # the memory test's job passes the estimate
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
            for name in stack.alive():
                wait_for_worker(service, name, name)
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


def _training_together(
    client: httpx2.Client, job_ids: list[str], epoch: int
) -> list[dict[str, Any]]:
    """The jobs once all of them are running at once, each past `epoch` epochs."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        jobs = [dict(client.get(f"/v1/jobs/{job_id}").json()) for job_id in job_ids]
        if all(j["status"] == "running" and j["progress"]["epoch"] >= epoch for j in jobs):
            return jobs
        assert all(j["status"] in ("queued", "running") for j in jobs), jobs
        time.sleep(0.05)
    raise AssertionError(f"jobs {job_ids} did not all reach epoch {epoch} at once")


def _epochs(client: httpx2.Client, job_id: str) -> list[int]:
    history = client.get(f"/v1/jobs/{job_id}/history").json()
    return [row["epoch"] for row in history["epochs"]]


def _recovery(
    client: httpx2.Client, job_ids: list[str], killed_at: float
) -> list[tuple[float, float]]:
    """For each job, the seconds from the kill until it was requeued (attempt 1 let go), and
    until it was running again (attempt 2 claimed)."""
    requeued: dict[str, float] = {}
    again: dict[str, float] = {}
    deadline = time.monotonic() + 180
    while len(again) < len(job_ids):
        assert time.monotonic() < deadline, f"not all running again 180 s after the kill: {again}"
        for job_id in set(job_ids) - set(again):
            job = client.get(f"/v1/jobs/{job_id}").json()
            now = time.monotonic() - killed_at
            assert job["status"] in ("queued", "running"), job
            if job["status"] == "queued" or job["attempts"] >= 2:
                requeued.setdefault(job_id, now)
            if job["status"] == "running" and job["attempts"] == 2:
                again[job_id] = now
        time.sleep(0.05)
    return [(requeued[job_id], again[job_id]) for job_id in job_ids]


def _finished_once(faults: Stack, job_id: str, epochs: int = EPOCHS) -> dict[str, Any]:
    done = wait_for(faults.client, job_id, timeout=300)
    assert done["status"] == "succeeded", faults.service.log_text()
    assert done["attempts"] == 2
    assert _epochs(faults.client, job_id) == list(range(1, epochs + 1))
    return done


def _two_warm_workers(faults: Stack) -> None:
    while len(faults.alive()) < 2:  # one to kill, one to take the job over
        faults.start_worker(wait=True)


def test_job_of_a_worker_killed_mid_epoch_finishes_on_the_other(faults: Stack) -> None:
    client = faults.client
    _two_warm_workers(faults)
    dataset = upload(client, "concrete_data.csv", "faults-kill")
    job = submit(client, concrete_job(dataset["id"], epochs=EPOCHS))
    running = _training(client, job["id"], epoch=KILL_AT)
    victim = faults.worker_of(running)
    killed_at = time.monotonic()
    os.killpg(faults.workers[victim].pid, signal.SIGKILL)  # the worker and its pool process
    faults.workers[victim].wait(timeout=10)
    assert faults.redis.unacked() == 0  # its message was acknowledged when the job started

    ((requeued, again),) = _recovery(client, [job["id"]], killed_at)
    assert requeued < WORKER_REQUEUED_WITHIN, faults.service.log_text()
    done = _finished_once(faults, job["id"])
    rescuer = faults.worker_of(done)
    assert rescuer != victim
    assert f"job {job['id']} resumes after epoch" in faults.log(rescuer)
    assert faults.redis.settled()  # nothing waits for the 7-hour visibility timeout
    print(
        f"whole worker killed at epoch {running['progress']['epoch']}: requeued {requeued:.1f} s "
        f"later, running again (attempt 2) {again:.1f} s later"
    )


def test_job_of_a_killed_pool_process_is_requeued_at_once(faults: Stack) -> None:
    client = faults.client
    _two_warm_workers(faults)
    dataset = upload(client, "concrete_data.csv", "faults-child")
    job = submit(client, concrete_job(dataset["id"], epochs=EPOCHS))
    running = _training(client, job["id"], epoch=KILL_AT)
    victim = faults.worker_of(running)
    (child,) = faults.pool_processes(victim)
    killed_at = time.monotonic()
    os.kill(child, signal.SIGKILL)  # as the kernel's out-of-memory killer would

    ((requeued, again),) = _recovery(client, [job["id"]], killed_at)
    assert requeued < POOL_PROCESS_REQUEUED_WITHIN, faults.service.log_text()
    _finished_once(faults, job["id"])
    assert faults.workers[victim].poll() is None  # the worker lives on, with a new pool process
    assert "most likely by the kernel's out-of-memory killer" in faults.log(victim)
    assert faults.redis.settled()
    print(
        f"pool process killed at epoch {running['progress']['epoch']}: requeued {requeued:.1f} s "
        f"later, running again (attempt 2) {again:.1f} s later"
    )


def test_jobs_of_two_killed_workers_run_again_on_a_new_one(faults: Stack) -> None:
    client = faults.client
    _two_warm_workers(faults)
    dataset = upload(client, "concrete_data.csv", "faults-both")
    # Long enough that both run at once even while a pool process of one worker still starts.
    epochs = 4 * EPOCHS
    jobs = [submit(client, concrete_job(dataset["id"], epochs=epochs)) for _ in range(2)]
    running = _training_together(client, [job["id"] for job in jobs], epoch=KILL_AT)
    assert {faults.worker_of(job) for job in running} == set(faults.alive())
    killed_at = time.monotonic()
    for name in faults.alive():
        os.killpg(faults.workers[name].pid, signal.SIGKILL)
        faults.workers[name].wait(timeout=10)
    assert faults.redis.unacked() == 0
    faults.start_worker("--concurrency", "2")  # starts (and imports TensorFlow) meanwhile

    times = _recovery(client, [job["id"] for job in jobs], killed_at)
    for job in jobs:
        _finished_once(faults, job["id"], epochs)
    assert max(requeued for requeued, _ in times) < WORKER_REQUEUED_WITHIN
    assert faults.redis.settled()
    for (requeued, again), job in zip(times, running, strict=True):
        print(
            f"both workers killed, job at epoch {job['progress']['epoch']}: requeued "
            f"{requeued:.1f} s later, running again on the new worker {again:.1f} s later"
        )


def test_sigterm_hands_the_running_job_back(faults: Stack) -> None:
    client = faults.client
    _two_warm_workers(faults)
    dataset = upload(client, "concrete_data.csv", "faults-term")
    job = submit(client, concrete_job(dataset["id"], epochs=EPOCHS))
    running = _training(client, job["id"], epoch=KILL_AT)
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


def _conv_job(dataset_id: str) -> dict[str, Any]:
    """A convolution whose first batch takes about 2.3 GiB."""
    return {
        "dataset_id": dataset_id,
        "task": "classification",
        "target": "y",
        "network": {
            "layers": [
                {"type": "conv2d", "filters": 256, "kernel_size": 3, "activation": "relu"},
                {"type": "flatten"},
            ]
        },
        "training": {"epochs": 2, "batch_size": 1024, "validation_split": 0.0, "seed": 1},
    }


@pytest.fixture(scope="module")
def small_worker(faults: Stack) -> str:
    """The only worker left: a memory ceiling, and a single attempt per job."""
    faults.stop_workers()
    return faults.start_worker(
        wait=True,
        DENDRITE_WORKER_MAX_MEMORY_MB=str(MEMORY_CEILING_MB),
        DENDRITE_MAX_ATTEMPTS="1",
    )


def test_job_past_the_memory_ceiling_fails_saying_so(faults: Stack, small_worker: str) -> None:
    client = faults.client
    dataset = upload(client, "mnist_small.npz", "faults-memory")
    job = submit(client, _conv_job(dataset["id"]))
    done = wait_for(client, job["id"], timeout=240)
    assert done["status"] == "failed", done
    assert done["error"].startswith(f"the job used more than {MEMORY_CEILING_MB} MiB of memory")
    assert "(DENDRITE_WORKER_MAX_MEMORY_MB)" in done["error"] and "batch_size" in done["error"]
    assert faults.workers[small_worker].poll() is None  # a new pool process takes the next job
    print(done["error"])


def test_pool_process_killed_on_its_last_attempt_fails_saying_memory(
    faults: Stack, small_worker: str
) -> None:
    client = faults.client
    dataset = upload(client, "concrete_data.csv", "faults-oom")
    job = submit(client, concrete_job(dataset["id"], epochs=EPOCHS))
    _training(client, job["id"], epoch=3)
    (child,) = faults.pool_processes(small_worker)
    killed_at = time.monotonic()
    os.kill(child, signal.SIGKILL)  # what the kernel's out-of-memory killer sends
    done = wait_for(client, job["id"], timeout=60)
    ended_in = time.monotonic() - killed_at
    assert done["status"] == "failed", done
    assert done["error"].startswith("attempt 1 of 1 (DENDRITE_MAX_ATTEMPTS) ended")
    assert "killed (SIGKILL), most likely by the kernel's out-of-memory killer" in done["error"]
    print(f"failed {ended_in:.1f} s after the kill: {done['error']}")
