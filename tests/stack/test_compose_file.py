"""docker-compose.yml, checked without a Docker engine: Compose 1.29 (`docker-compose`, Debian's
package) validates it and prints it resolved; the services, profiles, start order and commands
must be the stack docs/stack.md describes, and every command must parse as a `dendrite` command.

Skips without `docker-compose` on a laptop; fails under CI=true (.ci/run installs it).
"""

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from service import cli
from service.core import queue
from service.core.config import Settings

ROOT = Path(__file__).parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DENDRITE_SERVICES = {"migrate", "api", "worker", "worker-gpu"}
CORE = {"postgres", "redis", "migrate", "api", "worker"}
PROFILES = {"worker-gpu": ["gpu"], "flower": ["monitoring"], "minio": ["s3"], "minio-setup": ["s3"]}
S3_URL = "s3://dendrite/artifacts"


def _compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "CI needs docker-compose to validate docker-compose.yml (.ci/run installs it)"
            )
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    return found


def run_compose(
    *args: str, path: Path = COMPOSE_FILE, **env: str
) -> subprocess.CompletedProcess[str]:
    """`docker-compose -f path ...` with none of this process's settings leaking in."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DENDRITE_", "AWS_", "COMPOSE_", "POSTGRES_"))
    }
    return subprocess.run(
        [_compose(), "-f", str(path), *args],
        cwd=path.parent,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def resolved(**env: str) -> dict[str, Any]:
    done = run_compose("config", **env)
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return dict(resolved()["services"])


def test_compose_file_is_valid() -> None:
    done = run_compose("config", "-q")

    assert done.returncode == 0, done.stderr
    assert done.stdout == ""


def test_compose_rejects_an_unknown_key(tmp_path: Path) -> None:
    """The validation above means something: a misspelt key fails it."""
    broken = tmp_path / "docker-compose.yml"
    text = COMPOSE_FILE.read_text().replace("stop_grace_period: 30s", "stop_grace_periods: 30s")
    broken.write_text(text)

    done = run_compose("config", "-q", path=broken)

    assert done.returncode != 0
    assert "stop_grace_periods" in done.stderr


def test_stack_has_every_service_with_its_profile(services: dict[str, Any]) -> None:
    assert set(services) == CORE | set(PROFILES)
    for name, service in services.items():
        assert service.get("profiles") == PROFILES.get(name), name


def test_services_start_in_dependency_order(services: dict[str, Any]) -> None:
    healthy = {"condition": "service_healthy"}
    assert services["migrate"]["depends_on"] == {"postgres": healthy}
    for name in ("api", "worker", "worker-gpu"):
        assert services[name]["depends_on"] == {
            "postgres": healthy,
            "redis": healthy,
            "migrate": {"condition": "service_completed_successfully"},
        }, name
    assert services["flower"]["depends_on"] == {"redis": healthy}
    assert services["minio-setup"]["depends_on"] == {"minio": healthy}
    for name in ("postgres", "redis", "api", "minio"):
        assert services[name]["healthcheck"]["test"], name


def test_postgres_and_redis_keep_their_data(services: dict[str, Any]) -> None:
    assert any(v.endswith("/var/lib/postgresql/data:rw") for v in services["postgres"]["volumes"])
    command = services["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(v.startswith("redis:/data") for v in services["redis"]["volumes"])


def test_only_the_api_listens_beyond_this_machine(services: dict[str, Any]) -> None:
    """PostgreSQL, Redis and MinIO's S3 API are published only on purpose (docs/stack.md: a
    worker on another machine); Flower and MinIO's console listen on loopback (the API too, unless
    DENDRITE_BIND says otherwise: see below)."""
    for name in ("postgres", "redis", "worker", "migrate"):
        assert "ports" not in services[name], name
    for name in ("flower", "minio"):
        assert all(port.startswith("127.0.0.1:") for port in services[name]["ports"]), name


def _host_and_target(port: str | dict[str, Any]) -> tuple[str | None, int]:
    """A resolved port: Compose 1.29 prints one with a host address as "ip:published:target/tcp"
    and one without as a mapping."""
    if isinstance(port, str):
        host, _, rest = port.rpartition(":")
        return host.rpartition(":")[0] or None, int(rest.split("/")[0])
    return port.get("host_ip") or port.get("external_ip"), int(port["target"])


def test_api_is_published_on_loopback_and_checked_on_readyz(services: dict[str, Any]) -> None:
    """Loopback by default (TLS in front: docs/security.md); DENDRITE_BIND publishes it wider."""
    api = services["api"]
    assert [_host_and_target(port) for port in api["ports"]] == [("127.0.0.1", 8000)]
    assert "/readyz" in " ".join(api["healthcheck"]["test"])

    wide = resolved(DENDRITE_BIND="0.0.0.0")["services"]["api"]
    assert [_host_and_target(port) for port in wide["ports"]] == [("0.0.0.0", 8000)]


def test_workers_scale_and_stop_gracefully(services: dict[str, Any]) -> None:
    for name in ("worker", "worker-gpu"):
        worker = services[name]
        # `--scale worker=N` needs containers Compose may name and that publish nothing.
        assert "container_name" not in worker and "ports" not in worker, name
        assert worker["init"] is True
        # Long enough to finish an epoch and checkpoint it (Docker's default is 10 s).
        assert worker["stop_grace_period"].endswith("m"), name


def test_gpu_worker_reserves_nvidia_devices_and_takes_gpu_jobs(services: dict[str, Any]) -> None:
    gpu = services["worker-gpu"]
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert gpu["build"]["args"] == {"EXTRAS": "gpu"}
    assert queue.QUEUES["gpu"] in _option(gpu["command"], "--queues").split(",")
    assert _option(services["worker"]["command"], "--queues") == queue.QUEUES["auto"]


def test_dendrite_services_run_dendrite_commands(services: dict[str, Any]) -> None:
    """Each command parses as the `dendrite` CLI parses it (the image's entry point)."""
    commands = typer.main.get_command(cli.app).commands  # type: ignore[attr-defined]
    for name in DENDRITE_SERVICES:
        command = services[name]["command"]
        assert command[0] in commands, name
        commands[command[0]].make_context(command[0], list(command[1:]))  # raises if invalid
    assert [services[name]["command"][0] for name in sorted(DENDRITE_SERVICES)] == [
        "api", "migrate", "worker", "worker",
    ]  # fmt: skip


def test_local_artifact_store_by_default(services: dict[str, Any]) -> None:
    for name in DENDRITE_SERVICES:
        service = services[name]
        assert service["environment"]["DENDRITE_ARTIFACTS_URL"] == "/artifacts", name
        assert "artifacts:/artifacts:rw" in service["volumes"], name


def test_s3_store_when_the_url_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """With DENDRITE_ARTIFACTS_URL=s3://... every dendrite service gets it, MinIO's endpoint and
    its credentials; dendrite's settings accept that environment as it stands."""
    services = resolved(DENDRITE_ARTIFACTS_URL=S3_URL)["services"]
    minio = services["minio"]["environment"]
    for name in DENDRITE_SERVICES:
        environment = services[name]["environment"]
        assert environment["DENDRITE_ARTIFACTS_URL"] == S3_URL, name
        assert environment["DENDRITE_S3_ENDPOINT_URL"] == "http://minio:9000", name
        assert environment["AWS_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"]
        assert environment["AWS_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]
    assert services["minio-setup"]["environment"]["DENDRITE_ARTIFACTS_URL"] == S3_URL

    for key, value in services["worker"]["environment"].items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.artifacts_url == S3_URL and settings.log_format == "json"
    assert settings.broker_url == "redis://redis:6379/0"


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]
