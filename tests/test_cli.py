"""`dendrite api` as a container runs it: JSON log lines, and a graceful stop on SIGTERM."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2

from service.core.db import upgrade_database
from tests.e2e.conftest import free_port


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
