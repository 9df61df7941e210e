"""The stack as docker-compose.yml runs it, without Docker: `dendrite migrate`, the API under
uvicorn and two workers, each started with the compose file's command, on PostgreSQL + Redis, with
the artifacts (datasets, models, checkpoints) in S3: moto's server on loopback, over HTTP."""

import os
import signal
import subprocess
import threading
import time
import zipfile
from io import BytesIO
from typing import Any

import boto3
import pytest

from tests.conftest import S3_CREDENTIALS
from tests.e2e.conftest import STACK_WORKERS, Service, stack_worker_command, wait_for_worker
from tests.e2e.flows import concrete_job, concrete_rows, submit, upload, wait_for, watch

pytestmark = [pytest.mark.e2e, pytest.mark.stack]


def _bucket_keys(stack: Service) -> list[str]:
    """Every object in the stack's bucket, listed by a client of the test's own."""
    bucket, _, prefix = stack.env["DENDRITE_ARTIFACTS_URL"].removeprefix("s3://").partition("/")
    client = boto3.client(
        "s3",
        endpoint_url=stack.env["DENDRITE_S3_ENDPOINT_URL"],
        aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=S3_CREDENTIALS["AWS_DEFAULT_REGION"],
    )
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]
    finally:
        client.close()


def _node(job: dict[str, Any]) -> str:
    """The stack's name of the worker that runs (or ran) the job."""
    return str(job["worker"]).split("@", 1)[0]


def _worker_process(stack: Service, name: str) -> subprocess.Popen[bytes]:
    return next(p for p in stack.processes if p.poll() is None and f"{name}@%h" in map(str, p.args))


def _start_worker(stack: Service, name: str, log: str) -> None:
    """Start the worker `name` again, as a deployment would, and wait until it consumes."""
    stack.start(log, *stack_worker_command(name))
    wait_for_worker(stack, log, name)


def _training_past(stack: Service, job_id: str, epoch: int) -> dict[str, Any]:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        job = dict(stack.client.get(f"/v1/jobs/{job_id}").json())
        if job["status"] == "running" and job["progress"]["epoch"] >= epoch:
            return job
        assert job["status"] in ("queued", "running"), job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not train {epoch} epochs")


def _predict(stack: Service, model_id: str) -> list[dict[str, Any]]:
    _, records = concrete_rows(2)
    response = stack.client.post(f"/v1/models/{model_id}/predict", json={"instances": records})
    assert response.status_code == 200, response.text
    return list(response.json()["predictions"])


def test_concrete_regression_on_postgres_redis_and_s3(stack: Service) -> None:
    client = stack.client
    dataset = upload(client, "concrete_data.csv", "concrete")
    job = submit(client, concrete_job("concrete", epochs=10))
    seen = watch(client, job["id"])
    assert [s["status"] for s in seen][-1] == "succeeded", stack.log_text()
    assert seen[-1]["dataset_id"] == dataset["id"]
    history = client.get(f"/v1/jobs/{job['id']}/history").json()
    assert history["total"] == 10
    model_id = seen[-1]["model_id"]
    assert all(0 < p["Strength"] < 150 for p in _predict(stack, model_id))

    # The dataset and the model are objects in S3; the checkpoint went with the job's end.
    keys = _bucket_keys(stack)
    assert f"artifacts/datasets/{dataset['id']}.csv" in keys
    assert f"artifacts/models/{model_id}.keras" in keys
    assert not [key for key in keys if key.startswith(f"artifacts/checkpoints/{job['id']}/")]
    assert not (stack.logs / "data" / "artifacts").exists()  # nothing in a local store
    # The download streams the S3 object.
    download = client.get(f"/v1/models/{model_id}/download")
    assert download.status_code == 200
    assert int(download.headers["content-length"]) == len(download.content)
    assert "model.weights.h5" in zipfile.ZipFile(BytesIO(download.content)).namelist()


def test_two_jobs_run_on_two_workers_and_predictions_outlive_a_worker(stack: Service) -> None:
    """Two jobs submitted at once train side by side, one on each worker; with one worker
    stopped (SIGTERM, as `docker compose stop` sends), the API still answers from both models."""
    client = stack.client
    upload(client, "concrete_data.csv", "concrete-pair")
    bodies = [concrete_job("concrete-pair", epochs=40) for _ in range(2)]
    for seed, body in enumerate(bodies, start=1):
        body["training"]["seed"] = seed  # two different models
    jobs: list[dict[str, Any]] = []
    submitters = [
        threading.Thread(target=lambda body=body: jobs.append(submit(client, body)))
        for body in bodies
    ]
    for thread in submitters:
        thread.start()
    for thread in submitters:
        thread.join()
    done = [wait_for(client, job["id"]) for job in jobs]
    assert [job["status"] for job in done] == ["succeeded", "succeeded"], stack.log_text()
    assert sorted(_node(job) for job in done) == sorted(STACK_WORKERS)
    for job in done:
        assert client.get(f"/v1/jobs/{job['id']}/history").json()["total"] == 40

    stopped = _node(done[0])
    worker = _worker_process(stack, stopped)
    worker.terminate()
    assert worker.wait(timeout=60) == 0
    stack.processes.remove(worker)
    try:
        first, second = (_predict(stack, job["model_id"]) for job in done)
        assert all(0 < p["Strength"] < 150 for p in first + second)
        assert first != second  # two models, each answering for itself
    finally:
        _start_worker(stack, stopped, f"{stopped}-again")


def test_cancel_running_job_on_the_stack(stack: Service) -> None:
    client = stack.client
    upload(client, "concrete_data.csv", "concrete-cancel")
    job = submit(client, concrete_job("concrete-cancel", epochs=5000))
    _training_past(stack, job["id"], 1)
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
    assert wait_for(client, job["id"], timeout=60)["status"] == "cancelled"


def test_killed_worker_resumes_its_job_when_it_comes_back(stack: Service) -> None:
    """SIGKILL the worker running a job mid-job and start it again under its name: it queues the
    job it was running again at once, and the job finishes with each epoch once."""
    client = stack.client
    dataset = upload(client, "concrete_data.csv", "concrete-kill")
    job = submit(client, concrete_job(dataset["id"], epochs=40))
    running = _training_past(stack, job["id"], 5)
    name = _node(running)
    worker = _worker_process(stack, name)
    os.killpg(worker.pid, signal.SIGKILL)  # the worker and its pool child, like a lost machine
    worker.wait(timeout=10)
    stack.processes.remove(worker)
    _start_worker(stack, name, f"{name}-restarted")
    done = wait_for(client, job["id"], timeout=240)
    assert done["status"] == "succeeded", stack.log_text()
    assert done["attempts"] == 2
    history = client.get(f"/v1/jobs/{job['id']}/history").json()
    assert [row["epoch"] for row in history["epochs"]] == list(range(1, 41))


def test_job_of_a_lost_worker_resumes_from_its_s3_checkpoint_on_the_other(
    stack: Service,
) -> None:
    """A worker is lost for good mid-job (SIGKILL, not restarted): recovery requeues its job and
    the other worker, which shares nothing with it but the database, the broker and S3, resumes it
    after the last checkpoint it finds in S3."""
    client = stack.client
    dataset = upload(client, "concrete_data.csv", "concrete-lost")
    job = submit(client, concrete_job(dataset["id"], epochs=60))
    metadata = f"artifacts/checkpoints/{job['id']}/training_metadata.json"
    _training_past(stack, job["id"], 5)
    deadline = time.monotonic() + 60
    while metadata not in _bucket_keys(stack):  # its first checkpoint is in S3
        assert time.monotonic() < deadline, "no checkpoint reached S3"
        time.sleep(0.1)
    lost = _node(_training_past(stack, job["id"], 5))
    worker = _worker_process(stack, lost)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    stack.processes.remove(worker)
    try:
        done = wait_for(client, job["id"], timeout=240)
        assert done["status"] == "succeeded", stack.log_text()
        assert _node(done) != lost and done["attempts"] == 2
        history = client.get(f"/v1/jobs/{job['id']}/history").json()
        assert [row["epoch"] for row in history["epochs"]] == list(range(1, 61))
        other_log = "\n".join(
            path.read_text(errors="replace") for path in stack.logs.glob(f"{_node(done)}*.log")
        )
        assert f"job {job['id']} resumes after epoch" in other_log
        assert metadata not in _bucket_keys(stack)  # deleted when the job ended
    finally:
        _start_worker(stack, lost, f"{lost}-replaced")
