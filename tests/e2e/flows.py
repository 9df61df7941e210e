"""What a user does over HTTP, shared by the embedded and stack end-to-end tests."""

import copy
import time
from pathlib import Path
from typing import Any

import httpx2

from service.schemas import examples

DATA = Path(__file__).parent.parent / "data"
FINAL = ("succeeded", "failed", "cancelled")


def upload(client: httpx2.Client, filename: str, name: str) -> dict[str, Any]:
    with open(DATA / filename, "rb") as handle:
        response = client.post(
            "/v1/datasets", files={"file": (filename, handle)}, data={"name": name}
        )
    assert response.status_code == 201, response.text
    return dict(response.json())


def concrete_job(dataset_id: str, epochs: int) -> dict[str, Any]:
    body = copy.deepcopy(examples.CONCRETE_REGRESSION)
    body["dataset_id"] = dataset_id
    body["training"]["epochs"] = epochs
    return body


def submit(client: httpx2.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/jobs/{response.json()['id']}"
    return dict(response.json())


def wait_for(
    client: httpx2.Client, job_id: str, statuses: tuple[str, ...] = FINAL, timeout: float = 240
) -> dict[str, Any]:
    """Poll the job until its status is one of `statuses`; returns every distinct state seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = dict(client.get(f"/v1/jobs/{job_id}").json())
        if job["status"] in statuses:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not reach {statuses} in {timeout} s: {job}")


def watch(client: httpx2.Client, job_id: str, timeout: float = 240) -> list[dict[str, Any]]:
    """Every state the job showed while polling, until it ended."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = dict(client.get(f"/v1/jobs/{job_id}").json())
        if not seen or (job["status"], job["progress"]) != (
            seen[-1]["status"],
            seen[-1]["progress"],
        ):
            seen.append(job)
        if job["status"] in FINAL:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end in {timeout} s")


def concrete_rows(count: int) -> tuple[str, list[dict[str, Any]]]:
    """The first rows of the course file exactly as they are (CRLF, padded values), and as JSON."""
    raw = (DATA / "concrete_data.csv").read_bytes().decode()
    lines = raw.split("\r\n")
    header = lines[0].split(",")
    records = [
        {name: float(value) for name, value in zip(header, line.split(","), strict=True)}
        for line in lines[1 : count + 1]
    ]
    return "\r\n".join(lines[: count + 1]), records
