"""A Docker engine and the images the real compose stack needs, made on a machine without a
registry (marker `docker`).

This machine kind can run an engine (`dockerd --iptables=false --bridge=none`, as root) but can
pull nothing, so the images the compose file names are made here when they are missing:

- `dendrite-local/python:3.11-slim`: a Debian bookworm root made by `debootstrap` with Python
  3.11 and its venv module, `docker import`ed. It stands in for the public `python:3.11-slim`
  (given to the Dockerfile through its `BASE_IMAGE` build argument).
- `postgres:16` and `redis:7`: stand-ins for the public images, built from Debian's packages in
  `standins/` (see their Dockerfiles for what they honour of the official images).
- `dendrite:latest`: the project's Dockerfile, built first with `--network host` (the engine's
  default build network has no route out here) so that `docker-compose up --build` finds every
  layer in the cache.

Images stay in the engine's store between runs: a second run builds only what changed (the last
layer, dendrite's code). An engine this fixture started is stopped at the end of the session.

Runs under CI=true or DENDRITE_TEST_DOCKER=1 (it takes minutes and gigabytes); otherwise it
skips. Under CI a missing piece fails the test instead.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
LOGS = HERE / "logs"
BASE_IMAGE = "dendrite-local/python:3.11-slim"
STANDINS = {"postgres:16": HERE / "standins" / "postgres", "redis:7": HERE / "standins" / "redis"}
DENDRITE_IMAGE = "dendrite:latest"
MIRROR = os.environ.get("DENDRITE_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# The classic builder for `docker build` and for Compose 1.29's builds (docker-py, not the CLI).
DOCKER_ENV = {**os.environ, "DOCKER_BUILDKIT": "0", "COMPOSE_DOCKER_CLI_BUILD": "0"}


def unavailable(reason: str) -> None:
    """Fail under CI (the stack test must run there), skip on a laptop."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI runs the compose stack test: {reason}")
    pytest.skip(reason)


def run(cmd: list[str], log: Path | None = None, timeout: float = 1200) -> str:
    """Run a command; its output goes to `log` (appended) when given. Fails with the tail."""
    started = time.monotonic()
    proc = subprocess.run(
        cmd, env=DOCKER_ENV, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = proc.stdout + proc.stderr
    if log is not None:
        with log.open("a") as handle:
            handle.write(f"$ {' '.join(cmd)}  ({time.monotonic() - started:.1f} s)\n{output}\n")
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}:\n{output[-3000:]}")
    return proc.stdout


def _engine_answers() -> bool:
    try:
        probe = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def _image_id(name: str) -> str:
    probe = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", name],
        capture_output=True,
        text=True,
        env=DOCKER_ENV,
        check=False,
    )
    return probe.stdout.strip() if probe.returncode == 0 else ""


@pytest.fixture(scope="session")
def figures() -> Iterator[dict[str, object]]:
    """What the stack test measured; written to tests/stack/logs/figures.json."""
    measured: dict[str, object] = {}
    yield measured
    LOGS.mkdir(exist_ok=True)
    (LOGS / "figures.json").write_text(json.dumps(measured, indent=2, default=str) + "\n")


@pytest.fixture(scope="session")
def engine() -> Iterator[None]:
    """A Docker engine that answers: the running one, or `dockerd` started here (and stopped)."""
    if os.environ.get("CI") != "true" and os.environ.get("DENDRITE_TEST_DOCKER") != "1":
        pytest.skip("the compose stack test runs under CI=true or DENDRITE_TEST_DOCKER=1")
    for tool in ("docker", "docker-compose"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is not installed (apt-get install docker.io docker-compose)")
    LOGS.mkdir(exist_ok=True)
    if _engine_answers():
        yield
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None or os.geteuid() != 0:
        unavailable("no Docker engine answers, and dockerd cannot be started (it needs root)")
    assert dockerd is not None
    with (LOGS / "dockerd.log").open("ab") as log:
        # No iptables and no default bridge: what this kind of machine allows. Compose's own
        # networks still work, with container names resolving between containers.
        daemon = subprocess.Popen(
            [dockerd, "--iptables=false", "--bridge=none"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while not _engine_answers():
            if daemon.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dockerd did not start: see {LOGS / 'dockerd.log'}")
            time.sleep(1)
        yield
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def _make_base_image(log: Path) -> None:
    """Debian bookworm with Python 3.11 and venv, the stand-in for `python:3.11-slim`."""
    if shutil.which("debootstrap") is None:
        unavailable(f"{BASE_IMAGE} is missing and debootstrap is not installed")
    with tempfile.TemporaryDirectory(prefix="dendrite-rootfs-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,python3-pip,ca-certificates",
                "bookworm",
                str(rootfs),
                MIRROR,
            ],
            log,
        )
        # This network inspects TLS: pip in a build trusts what the machine trusts.
        if CA_BUNDLE.exists():
            shutil.copyfile(CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
        (rootfs / "usr/bin/python").unlink(missing_ok=True)
        (rootfs / "usr/bin/python").symlink_to("python3")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            [
                "docker",
                "import",
                "--change",
                "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt LANG=C.UTF-8",
                "--change",
                'CMD ["python3"]',
                "-",
                BASE_IMAGE,
            ],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            check=False,
        )
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            pytest.fail(f"docker import failed: {imported.stderr}")


@pytest.fixture(scope="session")
def images(engine: None, figures: dict[str, object]) -> dict[str, object]:
    """Every image the compose stack uses, present in the engine (made when missing)."""
    log = LOGS / "build.log"
    log.write_text("")
    made: dict[str, object] = {}
    if not _image_id(BASE_IMAGE):
        started = time.monotonic()
        _make_base_image(log)
        made["base_image_s"] = round(time.monotonic() - started, 1)
    for tag, folder in STANDINS.items():
        if not _image_id(tag):
            started = time.monotonic()
            run(["docker", "build", "--network", "host", "-t", tag, str(folder)], log)
            made[f"{tag}_s"] = round(time.monotonic() - started, 1)
    # Always built: the image must be this checkout's. Unchanged layers come from the cache.
    previous = _image_id(DENDRITE_IMAGE)
    started = time.monotonic()
    output = run(
        [
            "docker",
            "build",
            "--network",
            "host",
            "--build-arg",
            f"BASE_IMAGE={BASE_IMAGE}",
            "-t",
            DENDRITE_IMAGE,
            str(ROOT),
        ],
        log,
    )
    made["dendrite_image_s"] = round(time.monotonic() - started, 1)
    if previous and previous != _image_id(DENDRITE_IMAGE):
        # The last run's image, now untagged, holds its own copy of the environment (GBs): one
        # per run would fill the disk. (The build stage's cached layers are kept.)
        subprocess.run(["docker", "rmi", previous], capture_output=True, check=False)
    made["dendrite_image_cached_steps"] = output.count("Using cache")
    size = run(["docker", "image", "inspect", "--format", "{{.Size}}", DENDRITE_IMAGE])
    made["dendrite_image_bytes"] = int(size.strip())
    figures["images"] = made
    return made
