"""`dendrite api` as a container runs it: JSON log lines, and a graceful stop on SIGTERM; `dendrite
keys` run where no server keeps its data refuses, naming the directory it looked in."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2

from service.core.db import upgrade_database
from tests.e2e.conftest import DENDRITE, free_port, service_env


def test_api_logs_json_lines_and_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'dendrite.db'}"
    upgrade_database(database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DENDRITE_")}
    env |= {"DENDRITE_DATA_DIR": str(tmp_path), "DENDRITE_DATABASE_URL": database_url}
    env["DENDRITE_METRICS_EXPOSURE"] = "open"  # a keyless request that logs a 200
    port = free_port()
    log = tmp_path / "api.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "api", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=output,
        )
    try:
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            try:
                if httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                time.sleep(0.2)
        assert httpx2.get(f"http://127.0.0.1:{port}/metrics", timeout=10).status_code == 200

        process.send_signal(signal.SIGTERM)
        # uvicorn finishes its requests and the app's lifespan, then re-raises the signal.
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    messages = [record["message"] for record in records]
    assert any("GET /metrics" in message and "200" in message for message in messages)
    assert "Application shutdown complete." in messages
    assert records[-1]["message"].startswith("Finished server process")


def test_keys_create_refuses_where_no_server_keeps_its_data(tmp_path: Path) -> None:
    """Run from another directory without DENDRITE_DATA_DIR, it once made an empty database
    there, whose key the server then refused with a 401."""
    for command in (["keys", "create", "alice"], ["keys", "list"]):
        done = subprocess.run(
            [*DENDRITE, *command], cwd=tmp_path, env=service_env(), capture_output=True, text=True
        )

        assert done.returncode == 1
        assert f"no dendrite database in {tmp_path / 'dendrite-data'}" in done.stderr
        assert "DENDRITE_DATA_DIR=" in done.stderr
        assert done.stdout == ""
        assert not (tmp_path / "dendrite-data").exists()


def test_keys_create_makes_the_database_a_data_directory_names(tmp_path: Path) -> None:
    """DENDRITE_DATA_DIR said explicitly: a new database there is what was asked for."""
    data = tmp_path / "data"
    env = service_env(DENDRITE_DATA_DIR=str(data))

    done = subprocess.run(
        [*DENDRITE, "keys", "create", "alice"], cwd=tmp_path, env=env, capture_output=True
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines()[-1].startswith("dk_")
    assert (data / "dendrite.db").is_file()
