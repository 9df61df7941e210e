"""The README as a newcomer follows it: `dendrite serve` started in a checkout's root (its data in
./dendrite-data there), the key command its banner prints run from another directory, and the
walk-through's shell blocks pasted into bash in the checkout, unchanged but for the port."""

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from tests.e2e.conftest import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
VENV = Path(sys.executable).parents[1]  # the .venv that ./scripts/serve and ./scripts/test make
README_URL = "http://127.0.0.1:8000"


@dataclass
class Newcomer:
    checkout: Path
    url: str
    env: dict[str, str]
    log: Path
    started: str = ""  # what it printed until it was ready

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Newcomer]:
    """`.venv/bin/dendrite serve` in a directory laid out as the repository root is (its .venv
    and tests/data), with none of this process's DENDRITE_* or TensorFlow settings."""
    if not (VENV / "bin" / "dendrite").is_file():
        pytest.skip(f"no dendrite executable beside {sys.executable}: run in the project's .venv")
    checkout = tmp_path_factory.mktemp("checkout")
    (checkout / ".venv").symlink_to(VENV)
    (checkout / "tests").mkdir()
    (checkout / "tests" / "data").symlink_to(ROOT / "tests" / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DENDRITE_", "TF_CPP_"))}
    port = free_port()
    log = checkout / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [".venv/bin/dendrite", "serve", "--port", str(port)],
            cwd=checkout,
            env=env,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
    served = Newcomer(checkout, f"http://127.0.0.1:{port}", env, log)
    try:
        _wait_until_ready(served, process)
        served.started = served.output()
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _wait_until_ready(served: Newcomer, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, served.output()
        try:
            ready = httpx2.get(f"{served.url}/readyz", timeout=2).status_code == 200
        except httpx2.TransportError:
            ready = False
        if ready and " ready." in served.output():  # the worker's "embedded@<host> ready."
            return
        time.sleep(0.3)
    raise AssertionError(f"dendrite serve was not ready in 120 s:\n{served.output()}")


def walk_through() -> str:
    """The shell blocks of the README's walk-through, as one script."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Walk-through", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    assert len(blocks) >= 2
    return "\n".join(blocks)


def test_banner_key_command_works_from_another_directory(
    newcomer: Newcomer, tmp_path: Path
) -> None:
    lines = newcomer.output().splitlines()
    [hint] = [i for i, line in enumerate(lines) if "Create one (from any directory) with:" in line]
    command = lines[hint + 1].strip()
    assert command.endswith("keys create NAME")

    created = subprocess.run(
        ["bash", "-c", command.replace("NAME", "alice")],
        cwd=tmp_path,
        env=newcomer.env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    answer = httpx2.get(
        f"{newcomer.url}/v1/datasets", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    assert not (tmp_path / "dendrite-data").exists()


def test_readme_walk_through_runs_as_written(newcomer: Newcomer) -> None:
    script = walk_through()
    assert script.count(README_URL) == 1  # URL=...; every request goes through $URL
    # Any answer of 400 or more stops the script (the README's curl shows it and goes on).
    strict = 'set -euo pipefail\ncurl() { command curl --fail-with-body "$@"; }\n'

    done = subprocess.run(
        ["bash", "-c", strict + script.replace(README_URL, newcomer.url)],
        cwd=newcomer.checkout,
        env=newcomer.env,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert len(re.findall(r"^job \w+ succeeded$", done.stdout, re.MULTILINE)) == 2, done.stdout
    assert done.stdout.count('{"predictions":[{"Strength":') == 2  # step 4 JSON, step 6 alias
    assert '"version":2,' in done.stdout and '"aliases":["production"]' in done.stdout
    assert (newcomer.checkout / "concrete.keras").stat().st_size > 0


def test_serve_prints_no_notes_a_user_cannot_act_on(newcomer: Newcomer) -> None:
    """Nothing from TensorFlow's loading (in the worker, and in the API for the first prediction),
    Celery's banner or kombu's missing broker host, at the start or after the walk-through."""
    noise = (
        "absl::InitializeLog",
        "oneDNN custom operations",
        "cuda drivers",
        "cpu_feature_guard",
        "No hostname was supplied",
        "[tasks]",  # Celery's banner
    )

    assert "Uvicorn running on" in newcomer.started
    assert "succeeded" in newcomer.output()  # the walk-through's jobs ran
    assert [note for note in noise if note in newcomer.output()] == []
