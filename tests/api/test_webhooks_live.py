"""Webhooks from a real `dendrite api` process: a callback to an internal address is refused at
delivery with one generic reason (no port-scan signal), and a receiver that drips its answer or
answers 800 MiB neither delays another owner's webhook nor grows the API's memory.

Run with `-s` to see the figures (time to deliver, the API's RSS)."""

import copy
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

from service.core.db import upgrade_database
from service.schemas import examples
from tests.conftest import DATA
from tests.e2e.conftest import free_port
from tests.webhooks.receiver import Receiver, closed_port

REFUSED = "refused: address not allowed"
HUGE = 800 << 20


@dataclass
class Api:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    clients: dict[str, httpx2.Client] = field(default_factory=dict)

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024


def _start_api(root: Path, **settings: str) -> Iterator[Api]:
    """`dendrite api` with its own SQLite database, and a key for alice and one for bob."""
    database_url = f"sqlite:///{root / 'dendrite.db'}"
    upgrade_database(database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DENDRITE_")}
    env |= {
        "DENDRITE_DATA_DIR": str(root / "data"),
        "DENDRITE_DATABASE_URL": database_url,
        "DENDRITE_WEBHOOK_POLL_INTERVAL": "0.1",
        "DENDRITE_WEBHOOK_MAX_ATTEMPTS": "1",
        "PYTHONUNBUFFERED": "1",
        **settings,
    }
    port = free_port()
    log = root / "api.log"
    command = [sys.executable, "-m", "service.cli"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "api", "--port", str(port)], env=env, stdout=output, stderr=output
        )
    api = Api(f"http://127.0.0.1:{port}", process, log)
    try:
        for owner in ("alice", "bob"):
            made = subprocess.run(
                [*command, "keys", "create", owner], env=env, check=True, capture_output=True
            )
            key = made.stdout.decode().strip().splitlines()[-1]
            api.clients[owner] = httpx2.Client(
                base_url=api.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx2.get(f"{api.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start:\n{log.read_text()}")
            time.sleep(0.2)
        yield api
    finally:
        for client in api.clients.values():
            client.close()
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def strict_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The default policy: no internal receiver allowed."""
    yield from _start_api(tmp_path_factory.mktemp("strict"))


@pytest.fixture(scope="module")
def loopback_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """An operator who allows receivers on loopback (the test's receivers)."""
    yield from _start_api(
        tmp_path_factory.mktemp("loopback"), DENDRITE_WEBHOOK_ALLOWED_HOSTS="127.0.0.1"
    )


def _queued_job(client: httpx2.Client, callback_url: str) -> str:
    """A queued job of `client`'s owner (no worker runs: cancelling it ends it)."""
    files = {"file": ("concrete.csv", (DATA / "concrete_data.csv").read_bytes(), "text/csv")}
    dataset = client.post("/v1/datasets", files=files)
    assert dataset.status_code == 201, dataset.text
    body = copy.deepcopy(examples.CONCRETE_REGRESSION)
    body.update(dataset_id=dataset.json()["id"], callback_url=callback_url)
    job = client.post("/v1/jobs", json=body)
    assert job.status_code == 202, job.text
    return str(job.json()["id"])


def _cancel(client: httpx2.Client, job_id: str) -> None:
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200


def _attempted(client: httpx2.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    """The job's delivery once its (only) attempt is recorded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        [delivery] = client.get(f"/v1/jobs/{job_id}/deliveries").json()
        if delivery["attempts"]:
            return dict(delivery)
        time.sleep(0.1)
    raise AssertionError(f"no attempt of job {job_id}'s webhook in {timeout} s")


def test_callbacks_to_internal_addresses_are_refused_at_delivery_alike(strict_api: Api) -> None:
    alice = strict_api.clients["alice"]
    with Receiver() as receiver:
        open_port = receiver.server.server_address[1]
        targets = [
            f"http://127.0.0.1:{open_port}/hook",  # open: answered 200 before
            f"http://127.0.0.1:{closed_port()}/hook",  # closed: ConnectError before
            f"http://0x7f000001:{open_port}/hook",
            f"http://2130706433:{open_port}/hook",
            f"http://[::ffff:127.0.0.1]:{open_port}/hook",
            f"http://[::1]:{open_port}/hook",
            f"http://localhost:{open_port}/hook",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1:5432/",
        ]
        job_ids = [_queued_job(alice, url) for url in targets]
        for job_id in job_ids:
            _cancel(alice, job_id)
        attempts = [_attempted(alice, job_id)["attempts"][0] for job_id in job_ids]
    for url, attempt in zip(targets, attempts, strict=True):
        print(
            f"{url}: {attempt['status_code']} {attempt['error']!r} after {attempt['seconds']:.4f} s"
        )
    assert receiver.received == []
    assert {(a["status_code"], a["error"]) for a in attempts} == {(None, REFUSED)}


class DripReceiver:
    """Accepts a POST, then answers one byte every `interval` seconds, for `duration` at most."""

    def __init__(self, interval: float = 2.0, duration: float = 40.0) -> None:
        self.interval, self.duration = interval, duration
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.connected = threading.Event()
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/drip"

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        self.connected.set()
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        end = time.monotonic() + self.duration
        try:
            connection.recv(65536)
            for byte in answer:
                if time.monotonic() > end:
                    break
                connection.sendall(bytes([byte]))
                time.sleep(self.interval)
        except OSError:
            pass  # the sender gave up
        finally:
            connection.close()
            self.closed.set()

    def __enter__(self) -> "DripReceiver":
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.listener.close()


class HugeReceiver:
    """Answers 200 with an 800 MiB body, sent as fast as the sender reads it."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.connected = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/huge"

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        self.connected.set()
        chunk = b"\0" * (1 << 20)
        try:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % HUGE)
            while self.sent < HUGE:
                connection.sendall(chunk)
                self.sent += len(chunk)
        except OSError:
            pass  # the sender stopped reading and closed
        finally:
            connection.close()

    def __enter__(self) -> "HugeReceiver":
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.listener.close()


def test_a_dripping_and_a_huge_receiver_neither_delay_another_owner_nor_grow_the_api(
    loopback_api: Api,
) -> None:
    alice, bob = loopback_api.clients["alice"], loopback_api.clients["bob"]
    with DripReceiver() as drip, HugeReceiver() as huge, Receiver() as fast:
        slow_jobs = [_queued_job(alice, drip.url), _queued_job(alice, huge.url)]
        bobs_job = _queued_job(bob, fast.url)
        rss_before = loopback_api.rss_mib()
        peak = [rss_before]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.is_set():
                peak[0] = max(peak[0], loopback_api.rss_mib())
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        for job_id in slow_jobs:
            _cancel(alice, job_id)
        assert drip.connected.wait(30) and huge.connected.wait(30)

        cancelled_at = time.monotonic()
        _cancel(bob, bobs_job)
        fast.wait_for(1, timeout=120)
        delivered_after = time.monotonic() - cancelled_at
        drip_still_open = not drip.closed.is_set()

        huge_attempt = _attempted(alice, slow_jobs[1])["attempts"][0]
        drip_attempt = _attempted(alice, slow_jobs[0])["attempts"][0]
        sampling.set()
        sampler.join()
    growth = peak[0] - rss_before
    print(
        f"\nbob's webhook delivered {delivered_after:.2f} s after his cancel, behind a dripping "
        f"receiver (drip still open: {drip_still_open}); drip attempt: {drip_attempt['error']!r} "
        f"after {drip_attempt['seconds']:.1f} s; huge answer: {huge.sent >> 20} MiB sent, "
        f"attempt {huge_attempt['status_code']} {huge_attempt['error']!r}; API RSS "
        f"{rss_before:.0f} MiB -> peak {peak[0]:.0f} MiB (+{growth:.0f} MiB)"
    )
    assert drip_still_open  # bob's webhook did not wait for alice's slow receiver
    assert drip_attempt["status_code"] is None and drip_attempt["error"] == "timed out"
    assert huge_attempt["status_code"] == 200 and huge_attempt["error"] is None
    assert huge.sent < HUGE // 4  # the sender stopped reading and closed
    assert growth < 200  # MiB: the answer was not held in memory
