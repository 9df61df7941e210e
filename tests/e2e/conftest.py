"""Real processes for end-to-end tests: `dendrite serve` (embedded) and the stack
(`dendrite migrate`, `dendrite api`, `dendrite worker`) on PostgreSQL + Redis.

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

STACK_DATABASE = "dendrite_e2e"
POSTGRES_ADMIN_URL = os.environ.get(
    "DENDRITE_E2E_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("DENDRITE_E2E_REDIS", "redis://127.0.0.1:6379/9")
DENDRITE = [sys.executable, "-m", "service.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
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


@pytest.fixture(scope="session")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("embedded")
    port = free_port()
    service = Service(f"http://127.0.0.1:{port}", _env(DENDRITE_DATA_DIR=str(root / "data")), root)
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


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    database_url = require_stack()
    root = tmp_path_factory.mktemp("stack")
    env = _env(
        DENDRITE_DATA_DIR=str(root / "data"),
        DENDRITE_DATABASE_URL=database_url,
        DENDRITE_BROKER_URL=REDIS_URL,
        DENDRITE_HEARTBEAT_INTERVAL="1",
        DENDRITE_STALE_AFTER="6",
    )
    port = free_port()
    service = Service(f"http://127.0.0.1:{port}", env, root)
    subprocess.run([*DENDRITE, "migrate"], env=env, check=True, capture_output=True)
    service.use_new_key()
    service.start("worker-1", "worker", "--name", "e2e-1@%h")
    service.start("api", "api", "--port", str(port))
    yield from service.serve()
