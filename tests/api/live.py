"""A real `dendrite api` process (uvicorn with dendrite's HTTP protocol) for tests that need real
sockets: its own SQLite database, data directory and temporary directory."""

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2

from service.core.db import upgrade_database
from tests.e2e.conftest import free_port


@dataclass
class Server:
    port: int
    data_dir: Path
    temp_dir: Path
    log: Path
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str) -> str:
        """`dendrite ARGS` with this server's settings; its last line of output."""
        command = [sys.executable, "-m", "service.cli", *args]
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    def datasets_on_disk(self) -> list[Path]:
        return sorted((self.data_dir / "artifacts" / "datasets").glob("*"))


@contextlib.contextmanager
def running_api(root: Path, log: Path | None = None, **settings: str) -> Iterator[Server]:
    """`dendrite api` on a free port, with `settings` as DENDRITE_* variables (authentication off
    unless they say otherwise), its files under `root` and its output in `log` (default
    root/api.log); stopped on exit."""
    database_url = f"sqlite:///{root / 'dendrite.db'}"
    upgrade_database(database_url)
    (root / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DENDRITE_")}
    env |= {
        "DENDRITE_DATA_DIR": str(root / "data"),
        "DENDRITE_DATABASE_URL": database_url,
        "DENDRITE_AUTH_ENABLED": "false",
        "TMPDIR": str(root / "tmp"),  # where the multipart parser spools a large file part
        "PYTHONUNBUFFERED": "1",
    }
    env |= {f"DENDRITE_{name.upper()}": value for name, value in settings.items()}
    live = Server(free_port(), root / "data", root / "tmp", log or root / "api.log", env)
    command = [sys.executable, "-m", "service.cli", "api", "--port", str(live.port)]
    with live.log.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    try:
        _wait_until_up(live, process)
        yield live
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_until_up(live: Server, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited early:\n{live.log.read_text()}")
        try:
            if httpx2.get(f"{live.url}/healthz", timeout=2).status_code == 200:
                return
        except httpx2.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"the API did not start:\n{live.log.read_text()}")
