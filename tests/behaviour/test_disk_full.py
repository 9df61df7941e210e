"""A real `dendrite api` whose data directory (SQLite database, on-disk broker, artifact store)
and temporary directory (where the multipart parser spools an upload) lie on a 30 MiB tmpfs:
running out of space answers 507 in the envelope, leaves no partial file, and /readyz says so.

Mounting needs root: on a laptop the tests skip, under CI=true (which runs as root) they fail.
"""

import contextlib
import copy
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from service.schemas import examples
from tests.api import live

FILESYSTEM_BYTES = 30 << 20
MIN_FREE_BYTES = 8 << 20  # DENDRITE_MIN_FREE_BYTES of the server under test


@dataclass
class Server:
    """A real `dendrite api` whose files all lie on `mount`, a tiny filesystem."""

    live: live.Server
    mount: Path

    @property
    def url(self) -> str:
        return self.live.url

    @property
    def temp_dir(self) -> Path:
        return self.live.temp_dir

    def free_bytes(self) -> int:
        stats = os.statvfs(self.mount)
        return stats.f_bavail * stats.f_frsize

    def datasets_on_disk(self) -> list[str]:
        return [path.name for path in self.live.datasets_on_disk()]


@contextlib.contextmanager
def tiny_filesystem(folder: Path) -> Iterator[Path]:
    """A FILESYSTEM_BYTES tmpfs mounted on `folder`, unmounted afterwards."""
    if os.geteuid() != 0:
        message = "mounting a tmpfs needs root"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI runs as root")
        pytest.skip(message)
    folder.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={FILESYSTEM_BYTES}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.fail(f"could not mount a tmpfs on {folder}: {mounted.stderr}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("disk-full")
    with (
        tiny_filesystem(root / "fs") as mount,
        live.running_api(mount, log=root / "api.log", min_free_bytes=str(MIN_FREE_BYTES)) as api,
    ):
        yield Server(api, mount)


def _space_returns(live: Server, wanted: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while live.free_bytes() < wanted:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _csv(size: int) -> bytes:
    """A CSV of about `size` bytes."""
    row = b"1.5,2.5,3.5,4.5,5.5,6.5,7.5\n"
    return b"a,b,c,d,e,f,target\n" + row * (size // len(row))


def _upload(live: Server, content: bytes, name: str) -> httpx2.Response:
    files = {"file": (f"{name}.csv", content, "text/csv")}
    return httpx2.post(f"{live.url}/v1/datasets", files=files, timeout=60)


def _assert_507(response: httpx2.Response) -> dict[str, Any]:
    assert response.status_code == 507, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == "insufficient_storage", body
    assert "space" in body["detail"], body
    return body


@contextlib.contextmanager
def filled(live: Server) -> Iterator[None]:
    """The filesystem filled to its last byte by a ballast file, removed afterwards."""
    ballast = live.mount / "ballast"
    try:
        with ballast.open("wb", buffering=0) as handle:
            for size in (1 << 20, 64 << 10, 4 << 10, 512, 1):
                with contextlib.suppress(OSError):
                    while True:
                        handle.write(b"\0" * size)
        yield
    finally:
        ballast.unlink(missing_ok=True)


@pytest.fixture
def kept(server: Server) -> dict[str, Any]:
    """A dataset stored while there was room, which the faults below must leave intact."""
    response = _upload(server, _csv(4 << 10), "kept")
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_upload_larger_than_the_free_space_returns_507_and_leaves_nothing(
    server: Server, kept: dict[str, Any]
) -> None:
    on_disk, free = server.datasets_on_disk(), server.free_bytes()

    # Larger than what is free: the spooled copy of the part fills the disk.
    _assert_507(_upload(server, _csv(free + (4 << 20)), "too-big"))
    # Fits once, not twice: the spooled copy fits, its copy into the artifact store does not.
    _assert_507(_upload(server, _csv(free * 2 // 3), "half-fits"))

    assert server.datasets_on_disk() == on_disk
    assert list(server.temp_dir.iterdir()) == []
    # The space comes back: the request's spooled part is closed just after the response is sent.
    assert _space_returns(server, free - (256 << 10)), (server.free_bytes(), free)
    listing = httpx2.get(f"{server.url}/v1/datasets", timeout=10).json()
    assert [item["name"] for item in listing["items"]].count("too-big") == 0
    assert kept["id"] in [item["id"] for item in listing["items"]]
    # The server still serves: a small upload works and stores exactly its file.
    small = _upload(server, _csv(4 << 10), "small")
    assert small.status_code == 201, small.text
    assert f"{small.json()['id']}.csv" in server.datasets_on_disk()


def test_full_disk_makes_writes_507_and_readyz_503_until_space_returns(
    server: Server, kept: dict[str, Any]
) -> None:
    ready = httpx2.get(f"{server.url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    job = copy.deepcopy(examples.CONCRETE_REGRESSION) | {"dataset_id": kept["id"]}
    job["target"] = "target"

    with filled(server):
        readyz = httpx2.get(f"{server.url}/readyz", timeout=10)
        upload = _upload(server, _csv(64 << 10), "no-room")
        submit = httpx2.post(f"{server.url}/v1/jobs", json=job, timeout=30)
        listing = httpx2.get(f"{server.url}/v1/datasets", timeout=10)

    assert readyz.status_code == 503, readyz.text
    assert readyz.json()["checks"]["free_space"] is False
    assert "DENDRITE_MIN_FREE_BYTES" in readyz.json()["details"]["free_space"]
    _assert_507(upload)
    _assert_507(submit)  # SQLite: "database or disk is full"
    assert listing.status_code == 200  # reads still work
    assert "no-room" not in [item["name"] for item in listing.json()["items"]]
    assert not any(name.startswith(".") for name in server.datasets_on_disk())
    # Space back: ready again, and the same job is accepted.
    assert httpx2.get(f"{server.url}/readyz", timeout=10).status_code == 200
    accepted = httpx2.post(f"{server.url}/v1/jobs", json=job, timeout=30)
    assert accepted.status_code == 202, accepted.text
