"""The same flows on the stack: `dendrite migrate`, `dendrite api`, `dendrite worker` on
PostgreSQL + Redis, started with the commands a deployment uses."""

import os
import signal
import time

import pytest

from tests.e2e.conftest import Service
from tests.e2e.flows import concrete_job, concrete_rows, submit, upload, wait_for, watch

pytestmark = [pytest.mark.e2e, pytest.mark.stack]


def test_concrete_regression_on_postgres_and_redis(stack: Service) -> None:
    client = stack.client
    dataset = upload(client, "concrete_data.csv", "concrete")
    job = submit(client, concrete_job("concrete", epochs=10))
    seen = watch(client, job["id"])
    assert [s["status"] for s in seen][-1] == "succeeded", stack.log_text()
    assert seen[-1]["dataset_id"] == dataset["id"]
    history = client.get(f"/v1/jobs/{job['id']}/history").json()
    assert history["total"] == 10
    _, records = concrete_rows(2)
    response = client.post(
        f"/v1/models/{seen[-1]['model_id']}/predict", json={"instances": records}
    )
    assert response.status_code == 200
    assert all(0 < p["Strength"] < 150 for p in response.json()["predictions"])


def test_cancel_running_job_on_the_stack(stack: Service) -> None:
    client = stack.client
    upload(client, "concrete_data.csv", "concrete-cancel")
    job = submit(client, concrete_job("concrete-cancel", epochs=5000))
    wait_for(client, job["id"], ("running",))
    while client.get(f"/v1/jobs/{job['id']}").json()["progress"]["epoch"] < 1:
        time.sleep(0.05)
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
    assert wait_for(client, job["id"], timeout=60)["status"] == "cancelled"


def test_killed_worker_resumes_its_job_when_it_comes_back(stack: Service) -> None:
    """SIGKILL the whole worker mid-job and start it again under its name: it queues the job it
    was running again at once, and the job finishes with each epoch once."""
    client = stack.client
    dataset = upload(client, "concrete_data.csv", "concrete-kill")
    job = submit(client, concrete_job(dataset["id"], epochs=40))
    wait_for(client, job["id"], ("running",))
    while client.get(f"/v1/jobs/{job['id']}").json()["progress"]["epoch"] < 5:
        time.sleep(0.05)
    worker = next(p for p in stack.processes if "worker" in " ".join(map(str, p.args)))
    os.killpg(worker.pid, signal.SIGKILL)  # the worker and its pool child, like a lost machine
    worker.wait(timeout=10)
    stack.processes.remove(worker)
    stack.start("worker-1b", "worker", "--name", "e2e-1@%h")
    done = wait_for(client, job["id"], timeout=120)
    assert done["status"] == "succeeded", stack.log_text()
    assert done["attempts"] == 2
    history = client.get(f"/v1/jobs/{job['id']}/history").json()
    assert [row["epoch"] for row in history["epochs"]] == list(range(1, 41))
