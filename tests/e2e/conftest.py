"""Real processes for end-to-end tests: `dendrite serve` (embedded) and the stack
(`dendrite migrate`, `dendrite api`, two `dendrite worker`s, started with docker-compose.yml's
commands) on PostgreSQL + Redis + an S3 artifact store (moto's server on loopback).

Stack tests skip on a laptop without PostgreSQL/Redis, but fail under CI=true.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import yaml

from tests.conftest import S3_CREDENTIALS, new_bucket

STACK_DATABASE = "dendrite_e2e"
POSTGRES_ADMIN_URL = os.environ.get(
    "DENDRITE_E2E_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("DENDRITE_E2E_REDIS", "redis://127.0.0.1:6379/9")
DENDRITE = [sys.executable, "-m", "service.cli"]
COMPOSE_FILE = Path(__file__).parents[2] / "docker-compose.yml"
STACK_WORKERS = ("stack-1", "stack-2")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(**extra: str) -> dict[str, str]:
    """The environment for a service process a test starts: this one's without its DENDRITE_
    settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DENDRITE_")}
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def _wait_ready(base_url: str, processes: list[subprocess.Popen[bytes]], logs: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"a service process exited early; see {logs}")
        try:
            if httpx2.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{base_url} was not ready in 90 s; see {logs}")


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            # Each service runs in its own session: take its worker children down with it.
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


class Service:
    def __init__(self, base_url: str, env: dict[str, str], logs: Path) -> None:
        self.base_url, self.env, self.logs = base_url, env, logs
        self.client = httpx2.Client(base_url=base_url, timeout=60)
        self.processes: list[subprocess.Popen[bytes]] = []

    def use_new_key(self, owner: str = "e2e") -> None:
        """`dendrite keys create` as an operator runs it; the client sends the printed key."""
        created = subprocess.run(
            [*DENDRITE, "keys", "create", owner], env=self.env, check=True, capture_output=True
        )
        key = created.stdout.decode().strip().splitlines()[-1]
        self.client.headers["Authorization"] = f"Bearer {key}"

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                [*DENDRITE, *args], env=self.env, stdout=log, stderr=log, start_new_session=True
            )
        self.processes.append(process)
        return process

    def serve(self) -> Iterator["Service"]:
        """Wait until ready, hand the service to the tests, then stop every process."""
        try:
            _wait_ready(self.base_url, self.processes, self.logs)
            yield self
        finally:
            self.client.close()
            _stop(self.processes)

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-4000:] for p in self.logs.glob("*.log"))


EMBEDDED_SLOTS = 2  # jobs the embedded service trains at once


@pytest.fixture(scope="session")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("embedded")
    port = free_port()
    env = service_env(
        DENDRITE_DATA_DIR=str(root / "data"),
        DENDRITE_WEBHOOK_ALLOWED_HOSTS="127.0.0.1",  # test_live.py's receiver is on loopback
        DENDRITE_EMBEDDED_CONCURRENCY=str(EMBEDDED_SLOTS),  # whatever the machine's cores
    )
    service = Service(f"http://127.0.0.1:{port}", env, root)
    service.use_new_key()
    service.start("serve", "serve", "--port", str(port))
    yield from service.serve()


def _stack_reachable(
    database: str = STACK_DATABASE, redis_url: str | None = REDIS_URL
) -> str | None:
    """Create `database` afresh (and empty the Redis database); why not, if it failed."""
    try:
        import psycopg
        import redis

        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {database}")
        if redis_url is not None:
            redis.Redis.from_url(redis_url, socket_timeout=3).flushdb()
    except Exception as error:  # noqa: BLE001 - report why the stack is missing
        return f"{type(error).__name__}: {error}"
    return None


def require_stack(database: str = STACK_DATABASE, redis_url: str | None = REDIS_URL) -> str:
    """Skip (fail under CI) without PostgreSQL/Redis; the SQLAlchemy URL of a fresh `database`."""
    problem = _stack_reachable(database, redis_url)
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs PostgreSQL and Redis for the stack tests: {problem}")
        pytest.skip(f"PostgreSQL/Redis not reachable: {problem}")
    database_url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"
    return database_url.replace("postgresql://", "postgresql+psycopg://", 1)


def compose_command(service: str) -> list[str]:
    """The `dendrite` arguments docker-compose.yml runs for `service` (its image's entry point is
    `dendrite`)."""
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    return [str(argument) for argument in services[service]["command"]]


def with_option(command: list[str], option: str, value: str) -> list[str]:
    """`command` with `option` set to `value` (replaced where it is given, else added)."""
    if option in command:
        at = command.index(option)
        return [*command[: at + 1], value, *command[at + 2 :]]
    return [*command, option, value]


def stack_worker_command(name: str) -> list[str]:
    """The compose worker's command. Each compose replica has its own host name, so its node
    name (`celery@<container>`) is unique; here every worker shares one host, so each gets the
    name the stack tests know it by."""
    return with_option(compose_command("worker"), "--name", f"{name}@%h")


def wait_for_worker(service: Service, log: str, name: str, timeout: float = 120) -> None:
    """Until the worker writing `<log>.log` says it consumes (Celery's `<name>@<host> ready.`)."""
    marker = f"{name}@{socket.gethostname()} ready."
    path = service.logs / f"{log}.log"
    deadline = time.monotonic() + timeout
    while not (path.exists() and marker in path.read_text(errors="replace")):
        if time.monotonic() > deadline:
            raise RuntimeError(f"worker {name} was not ready in {timeout} s; see {path}")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str) -> Iterator[Service]:
    """docker-compose.yml's topology without Docker: `migrate`, then the API and two workers, each
    started with the compose file's command; artifacts in S3 (moto's server, a fresh bucket)."""
    database_url = require_stack()
    root = tmp_path_factory.mktemp("stack")
    env = service_env(
        DENDRITE_DATA_DIR=str(root / "data"),  # nothing lands there: see test_stack.py
        DENDRITE_DATABASE_URL=database_url,
        DENDRITE_BROKER_URL=REDIS_URL,
        DENDRITE_ARTIFACTS_URL=f"s3://{new_bucket(s3_endpoint)}/artifacts",
        DENDRITE_S3_ENDPOINT_URL=s3_endpoint,
        DENDRITE_HEARTBEAT_INTERVAL="1",
        DENDRITE_STALE_AFTER="6",
        DENDRITE_CHECKPOINT_INTERVAL="0",
        **S3_CREDENTIALS,
    )
    port = free_port()
    service = Service(f"http://127.0.0.1:{port}", env, root)
    subprocess.run(
        [*DENDRITE, *compose_command("migrate")], env=env, check=True, capture_output=True
    )
    service.use_new_key()
    for name in STACK_WORKERS:
        service.start(name, *stack_worker_command(name))
    api = with_option(compose_command("api"), "--host", "127.0.0.1")
    service.start("api", *with_option(api, "--port", str(port)))
    for ready in service.serve():
        for name in STACK_WORKERS:
            wait_for_worker(ready, name, name)
        yield ready
