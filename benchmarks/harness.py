"""What every benchmark shares: real dendrite processes in a scratch folder, an HTTP client with a
key, the machine's description, and the figures each benchmark reports.

The processes are the ones a user runs (`dendrite serve`, `dendrite api`, `dendrite worker`), so a
figure measures the product, not a test double. Every process runs in its own session and is
stopped (its children with it) when the benchmark leaves its `with` block.
"""

import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
DENDRITE = [sys.executable, "-m", "service.cli"]
FINAL = ("succeeded", "failed", "cancelled")
POSTGRES_ADMIN_URL = os.environ.get(
    "DENDRITE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("DENDRITE_BENCH_REDIS", "redis://127.0.0.1:6379/10")


@dataclass
class Figure:
    """One measured figure; `baseline` is measured in the same run; `ratio` is value/baseline."""

    benchmark: str
    name: str
    value: float | None
    unit: str
    goal: str = ""
    passed: bool | None = None
    baseline: float | None = None
    baseline_name: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    def line(self) -> str:
        value = "n/a" if self.value is None else f"{self.value:.4g} {self.unit}"
        text = f"[{self.benchmark}] {self.name}: {value}"
        if self.baseline is not None:
            text += f" (baseline {self.baseline_name}: {self.baseline:.4g} {self.unit}"
            text += f", ratio {self.ratio:.3g})" if self.ratio is not None else ")"
        if self.goal:
            verdict = {True: "pass", False: "MISS", None: "-"}[self.passed]
            text += f"  goal {self.goal}: {verdict}"
        if self.note:
            text += f"  ({self.note})"
        return text


@dataclass
class Run:
    """Options every benchmark reads, and the figures they add."""

    quick: bool = False
    mnist_path: Path = DATA / "mnist_small.npz"
    figures: list[Figure] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dendrite-bench-")))

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        print(figure.line(), flush=True)
        return figure


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(**settings: str) -> dict[str, str]:
    """This process's environment without any DENDRITE_* setting, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DENDRITE_")}
    env |= {"PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3", **settings}
    return env


class Service:
    """dendrite processes sharing one set of settings, and a client that sends a key."""

    def __init__(self, folder: Path, **settings: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.env = environment(DENDRITE_DATA_DIR=str(folder / "data"), **settings)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.client = httpx2.Client(base_url=self.base_url, timeout=300)

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [*DENDRITE, *args], env=self.env, check=True, capture_output=True, text=True
        )
        return done.stdout

    def use_new_key(self, owner: str = "bench") -> None:
        key = self.cli("keys", "create", owner).strip().splitlines()[-1]
        self.client.headers["Authorization"] = f"Bearer {key}"

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with open(self.folder / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                [*DENDRITE, *args], env=self.env, stdout=log, stderr=log, start_new_session=True
            )
        self.processes[name] = process
        return process

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited early; see {self.folder}/{name}.log")
            try:
                if self.client.get("/readyz", timeout=2).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.base_url} was not ready in {timeout} s; see {self.folder}")

    def stop(self) -> None:
        self.client.close()
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    # --- what a user does ---------------------------------------------------------------------

    def upload(self, path: Path, name: str) -> dict[str, Any]:
        with open(path, "rb") as handle:
            response = self.client.post(
                "/v1/datasets", files={"file": (path.name, handle)}, data={"name": name}
            )
        response.raise_for_status()
        return dict(response.json())

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post("/v1/jobs", json=body)
        if response.status_code != 202:
            raise RuntimeError(f"submit failed: {response.status_code} {response.text}")
        return dict(response.json())

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.client.get(f"/v1/jobs/{job_id}").json())

    def wait_for(
        self, job_id: str, statuses: tuple[str, ...] = FINAL, poll: float = 0.02
    ) -> dict[str, Any]:
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["status"] in statuses:
                return job
            time.sleep(poll)
        raise RuntimeError(f"job {job_id} did not reach {statuses}")

    def wait_worker_idle(self, settle: float) -> None:
        """No job is running, and the worker's processes are idle: a new pool process has
        imported TensorFlow (it takes seconds, more on a busy machine). At least `settle` s."""
        while self.client.get("/v1/jobs", params={"status": "running"}).json()["total"]:
            time.sleep(0.1)
        deadline = time.monotonic() + max(settle, 300)
        started = time.monotonic()
        busy = cpu_seconds(self.processes.values())
        while time.monotonic() < deadline:
            time.sleep(1.0)
            now = cpu_seconds(self.processes.values())
            if now - busy < 0.15 and time.monotonic() - started >= settle:
                return
            busy = now


@contextmanager
def embedded(folder: Path, **settings: str) -> Iterator[Service]:
    """`dendrite serve`: the API and one worker, SQLite and the on-disk broker."""
    service = Service(folder, **settings)
    try:
        service.use_new_key()
        service.start("serve", "serve", "--port", str(service.port))
        service.wait_ready()
        yield service
    finally:
        service.stop()


@contextmanager
def split(folder: Path, workers: int = 1, api: bool = True, **settings: str) -> Iterator[Service]:
    """`dendrite migrate`, `dendrite api` and `dendrite worker --concurrency N`, sharing settings
    (embedded storage unless `settings` name a database and a broker)."""
    service = Service(folder, **settings)
    try:
        service.cli("migrate")
        service.use_new_key()
        if workers:
            service.start("worker", "worker", f"--concurrency={workers}", "--name", "bench@%h")
        if api:
            service.start("api", "api", "--port", str(service.port))
            service.wait_ready()
        yield service
    finally:
        service.stop()


def stack_settings(database: str) -> dict[str, str] | str:
    """Settings for a fresh PostgreSQL database and an emptied Redis database; or why not."""
    try:
        import psycopg
        import redis

        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {database}")
        redis.Redis.from_url(REDIS_URL, socket_timeout=3).flushdb()
    except Exception as error:  # noqa: BLE001 - reported as the reason the figure is missing
        return f"{type(error).__name__}: {error}"
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"
    return {
        "DENDRITE_DATABASE_URL": url.replace("postgresql://", "postgresql+psycopg://", 1),
        "DENDRITE_BROKER_URL": REDIS_URL,
    }


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def descendants(pids: set[int]) -> set[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found = set(pids)
    while True:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        if not more:
            return found
        found |= more


def cpu_seconds(processes: Iterable[subprocess.Popen[bytes]]) -> float:
    """CPU time used so far by these processes and all their children (Linux /proc)."""
    ticks = 0
    for pid in descendants({p.pid for p in processes if p.poll() is None}):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "?"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        total_kib = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
        memory = f"{total_kib / 2**20:.1f} GiB"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    versions = subprocess.run(
        [
            sys.executable,
            "-c",
            "import tensorflow as tf, keras; print(tf.__version__, keras.__version__)",
        ],
        env=environment(),
        capture_output=True,
        text=True,
    ).stdout.split()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "load average at start (1, 5, 15 min)": load,
        "os": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": versions[0] if versions else "?",
        "keras": versions[1] if len(versions) > 1 else "?",
    }
