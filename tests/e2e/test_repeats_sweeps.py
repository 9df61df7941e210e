"""Repeated jobs and sweeps through `dendrite serve` with a real worker and real Keras training."""

import copy
import statistics
import time

import pytest

from service.schemas import examples
from tests.e2e.conftest import Service
from tests.e2e.flows import concrete_rows, upload

pytestmark = pytest.mark.e2e


def wait_ended(service: Service, path: str, timeout: float = 300) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = dict(service.client.get(path).json())
        if state["status"] in ("succeeded", "failed", "cancelled"):
            return state
        time.sleep(0.2)
    raise AssertionError(f"{path} did not end in {timeout} s: {service.log_text()}")


def test_repeated_job_trains_a_fresh_model_per_split_and_aggregates(embedded: Service) -> None:
    client = embedded.client
    dataset = upload(client, "concrete_data.csv", "concrete-repeats")
    body = copy.deepcopy(examples.CONCRETE_REPEATED)
    body.update(dataset_id=dataset["id"], repeats=3)
    body["training"]["epochs"] = 3
    submitted = client.post("/v1/jobs", json=body)
    assert submitted.status_code == 202, submitted.text

    job = wait_ended(embedded, f"/v1/jobs/{submitted.json()['id']}")
    assert job["status"] == "succeeded", (job, embedded.log_text())
    assert job["progress"] == {"epoch": 9, "epochs": 9}
    table = client.get(f"/v1/jobs/{job['id']}/repeats").json()
    losses = [item["test_metrics"]["loss"] for item in table["items"]]
    assert [item["status"] for item in table["items"]] == ["succeeded"] * 3
    assert all(item["epochs"] == 3 and "loss" in item["metrics"] for item in table["items"])
    assert len(set(losses)) == 3  # new splits and new initializations: different models
    aggregate = table["summary"]["test_metrics"]["loss"]
    assert aggregate["count"] == 3
    assert aggregate["mean"] == pytest.approx(statistics.fmean(losses))
    assert aggregate["std"] == pytest.approx(statistics.pstdev(losses))
    assert job["repeats"]["test_metrics"]["loss"] == aggregate

    # Repeat 0's model serves the job's predictions.
    model = client.get(f"/v1/models/{job['model_id']}").json()
    assert model["job_id"] == job["id"]
    assert model["test_metrics"]["loss"] == pytest.approx(losses[0])
    _, records = concrete_rows(2)
    predicted = client.post(f"/v1/models/{job['model_id']}/predict", json={"instances": records})
    assert predicted.status_code == 200, predicted.text


def test_sweep_ranks_its_trials_and_the_best_model_predicts(embedded: Service) -> None:
    client = embedded.client
    dataset = upload(client, "concrete_data.csv", "concrete-sweep")
    body = copy.deepcopy(examples.CONCRETE_SWEEP)
    body["base"]["dataset_id"] = dataset["id"]
    body["base"]["training"]["epochs"] = 4
    body["parameters"] = {"training.optimizer.learning_rate": [0.0001, 0.05]}
    created = client.post("/v1/sweeps", json=body)
    assert created.status_code == 202, created.text

    sweep = wait_ended(embedded, f"/v1/sweeps/{created.json()['id']}")
    assert sweep["status"] == "succeeded", (sweep, embedded.log_text())
    values = [trial["value"] for trial in sweep["trials"]]
    assert [trial["rank"] for trial in sweep["trials"]] == [1, 2]
    assert values == sorted(values)
    for trial in sweep["trials"]:
        history = client.get(f"/v1/jobs/{trial['job_id']}/history").json()["epochs"]
        assert trial["value"] == pytest.approx(history[-1]["metrics"]["val_loss"])
    best = sweep["best"]
    assert best == sweep["trials"][0] and best["model_id"]
    _, records = concrete_rows(1)
    predicted = client.post(f"/v1/models/{best['model_id']}/predict", json={"instances": records})
    assert predicted.status_code == 200, predicted.text


def test_cancel_sweep_cancels_its_running_and_queued_jobs(embedded: Service) -> None:
    client = embedded.client
    dataset = upload(client, "concrete_data.csv", "concrete-sweep-cancel")
    body = copy.deepcopy(examples.CONCRETE_SWEEP)
    body["base"]["dataset_id"] = dataset["id"]
    body["base"]["training"]["epochs"] = 5000
    body["parameters"] = {"training.batch_size": [8, 16, 32]}
    sweep = client.post("/v1/sweeps", json=body).json()
    deadline = time.monotonic() + 120
    while client.get(f"/v1/sweeps/{sweep['id']}").json()["status"] != "running":
        assert time.monotonic() < deadline, embedded.log_text()
        time.sleep(0.2)

    cancelled = client.post(f"/v1/sweeps/{sweep['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    ended = wait_ended(embedded, f"/v1/sweeps/{sweep['id']}", timeout=120)
    assert ended["status"] == "cancelled"
    statuses = [client.get(f"/v1/jobs/{t['job_id']}").json()["status"] for t in ended["trials"]]
    assert statuses == ["cancelled"] * 3
