"""What one request can take from a real `dendrite api` process, measured from outside (its RSS):
an NPZ preview decompresses only the rows it shows, an NPZ that expands 1000 times its size is
refused at upload, and a CSV prediction body of millions of tiny rows is refused while it is read.
"""

import copy
import math
import os
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import numpy as np
import pytest
from sqlalchemy.orm import Session

from service import datasets, jobs, keys
from service.core.config import Settings
from service.core.orm import JobStatus
from service.schemas import examples
from service.schemas.jobs import JobCreate
from service.schemas.models import MAX_INSTANCES
from tests.conftest import DATA
from tests.e2e.conftest import free_port

MiB = 1 << 20
T = TypeVar("T")


@dataclass
class Api:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def rss(self) -> int:
        """The server process's resident memory, in bytes."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def peak_while(self, work: Callable[[], T]) -> tuple[T, int]:
        """`work`'s result and the server's highest RSS while it ran (sampled every 10 ms)."""
        peak, done = self.rss(), threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, self.rss())
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            result = work()
        finally:
            done.set()
            sampler.join()
        return result, max(peak, self.rss())


def start_api(settings: Settings, log: Path, source: Path | None = None, **env: str) -> Api:
    """`dendrite api` on this test's database and data directory (so rows and files the test
    makes are the server's), without authentication; `source` runs another checkout's code."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DENDRITE_")}
    environment |= {
        "DENDRITE_DATA_DIR": str(settings.data_dir),
        "DENDRITE_DATABASE_URL": settings.database_url or "",
        "DENDRITE_AUTH_ENABLED": "false",
        "PYTHONUNBUFFERED": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    } | {f"DENDRITE_{name}": value for name, value in env.items()}
    port = free_port()
    command = [sys.executable, "-m", "service.cli", "api", "--port", str(port)]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, env=environment, stdout=output, stderr=output, cwd=source
        )
    api = Api(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited ({process.returncode}):\n{log.read_text()}")
        try:
            if httpx2.get(f"{api.url}/healthz", timeout=2).status_code == 200:
                return api
        except httpx2.TransportError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"the API did not start:\n{log.read_text()}")


def stop_api(api: Api) -> None:
    api.process.terminate()
    try:
        api.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        api.process.kill()
        api.process.wait()


def write_zero_npz(path: Path, x_shape: tuple[int, ...], dtype: str = "<f8") -> None:
    """A compressed NPZ of zeros ('x' of `x_shape`, 'y' of its length), written in 1 MiB pieces
    so a bomb of gigabytes never is in memory here."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, shape in (("x", x_shape), ("y", x_shape[:1])):
            with archive.open(f"{name}.npy", "w", force_zip64=True) as entry:
                header = {"descr": dtype, "fortran_order": False, "shape": shape}
                np.lib.format.write_array_header_1_0(entry, header)
                left = math.prod(shape) * np.dtype(dtype).itemsize
                zeros = bytes(MiB)
                while left > 0:
                    entry.write(zeros[: min(left, MiB)])
                    left -= MiB


def upload(api: Api, path: Path) -> httpx2.Response:
    with path.open("rb") as file:
        files = {"file": (path.name, file, "application/octet-stream")}
        return httpx2.post(f"{api.url}/v1/datasets", files=files, timeout=300)


def assert_envelope(response: httpx2.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) <= {"error", "detail", "field"} and body["detail"], body
    return body


@pytest.fixture
def api(settings: Settings, tmp_path: Path) -> Iterator[Api]:
    # Ratios above the default let the preview test upload its bomb; the ratio test sets its own.
    server = start_api(settings, tmp_path / "api.log", MAX_COMPRESSION_RATIO="100000")
    yield server
    stop_api(server)


def test_npz_preview_decompresses_only_the_rows_it_shows(api: Api, tmp_path: Path) -> None:
    path = tmp_path / "wide.npz"
    write_zero_npz(path, (32_768, 1024))  # 256 MiB of float64 zeros
    assert path.stat().st_size < MiB
    created = upload(api, path)
    assert created.status_code == 201, created.text
    preview_url = f"{api.url}/v1/datasets/{created.json()['id']}/preview?limit=1"
    httpx2.get(preview_url, timeout=60).raise_for_status()  # the route's first-call costs
    before = api.rss()

    def three_previews() -> list[httpx2.Response]:
        results: list[httpx2.Response] = []
        threads = [
            threading.Thread(target=lambda: results.append(httpx2.get(preview_url, timeout=120)))
            for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results

    responses, peak = api.peak_while(three_previews)

    for response in responses:
        assert response.status_code == 200, response.text
        rows = response.json()["rows"]
        assert len(rows) == 1 and rows[0]["x"] == [0.0] * 1024 and rows[0]["y"] == 0.0
    # Each preview decompressed the whole 256 MiB array before (768 MiB for three at once).
    assert peak - before < 64 * MiB, f"the API grew by {(peak - before) / MiB:.0f} MiB"


def test_npz_expanding_1000_times_its_size_is_refused_with_413(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "bomb.npz"
    write_zero_npz(path, (32_768, 1024))  # 256 MiB, under DENDRITE_MAX_DECOMPRESSED_BYTES
    assert path.stat().st_size < MiB
    server = start_api(settings, tmp_path / "api.log")  # the default ratio
    try:
        before = server.rss()
        response, peak = server.peak_while(lambda: upload(server, path))
    finally:
        stop_api(server)

    body = assert_envelope(response, 413)
    assert body["error"] == "payload_too_large" and body["field"] == "file"
    assert "DENDRITE_MAX_COMPRESSION_RATIO" in body["detail"] and "100 times" in body["detail"]
    assert peak - before < 64 * MiB, f"the API grew by {(peak - before) / MiB:.0f} MiB"


@pytest.fixture
def one_feature_model(session: Session) -> str:
    """A model on one numeric column of the concrete data, trained for one epoch."""
    principal = keys.LOCAL  # what the server, authentication off, acts as
    with open(DATA / "concrete_data.csv", "rb") as handle:
        dataset = datasets.create(session, principal, handle, "concrete_data.csv", "text/csv", None)
    body = copy.deepcopy(examples.CONCRETE_REGRESSION)
    body |= {"dataset_id": dataset.id, "features": ["Age"]}
    body["training"]["epochs"] = 1
    job = jobs.submit(session, principal, JobCreate.model_validate(body))
    session.commit()
    from workers.tasks import run_job  # the trained model, as a worker records it

    run_job(job.id)
    session.refresh(job)
    assert job.status == JobStatus.succeeded and job.model is not None, job.error
    return job.model.id


def test_csv_prediction_over_the_instance_limit_is_refused_while_read(
    api: Api, one_feature_model: str
) -> None:
    url = f"{api.url}/v1/models/{one_feature_model}/predict"
    small = httpx2.post(  # loads TensorFlow and the model: the API's first-call costs
        url, content=b"Age\n28\n3\n", headers={"Content-Type": "text/csv"}, timeout=300
    )
    assert small.status_code == 200 and len(small.text.splitlines()) == 3, small.text
    body = b"Age\n" + b"1.0\n" * ((8 * MiB - 4) // 4)  # 2,097,151 rows, at the body size limit
    before = api.rss()

    response, peak = api.peak_while(
        lambda: httpx2.post(url, content=body, headers={"Content-Type": "text/csv"}, timeout=300)
    )

    detail = assert_envelope(response, 422)["detail"]
    assert f"more than {MAX_INSTANCES:,} rows" in detail
    # The whole body became 2 million records and predictions before (over 1 GB).
    assert peak - before < 256 * MiB, f"the API grew by {(peak - before) / MiB:.0f} MiB"
