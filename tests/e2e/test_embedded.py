"""The course's networks through the API in embedded mode.

`dendrite serve`: SQLite and the on-disk broker, one worker.
"""

import copy
import json
import time

import keras
import numpy as np
import pytest

from service.schemas import examples
from tests.e2e.conftest import EMBEDDED_SLOTS, Service
from tests.e2e.flows import DATA, concrete_job, concrete_rows, submit, upload, wait_for, watch

pytestmark = pytest.mark.e2e


def test_concrete_regression_trains_and_predicts_raw_rows(embedded: Service) -> None:
    client = embedded.client
    dataset = upload(client, "concrete_data.csv", "concrete")
    assert dataset["rows"] == 1030 and len(dataset["columns"]) == 9
    job = submit(client, concrete_job(dataset["id"], epochs=15))
    assert job["status"] == "queued"

    seen = watch(client, job["id"])
    statuses = [state["status"] for state in seen]
    assert statuses[-1] == "succeeded", embedded.log_text()
    assert "running" in statuses
    assert any(0 < s["progress"]["epoch"] < 15 and s["latest_metrics"] for s in seen)
    final = seen[-1]
    assert final["progress"] == {"epoch": 15, "epochs": 15}
    assert final["model_id"] and final["device_used"] == "cpu"

    history = client.get(f"/v1/jobs/{job['id']}/history").json()
    assert [row["epoch"] for row in history["epochs"]] == list(range(1, 16))
    assert set(history["epochs"][0]["metrics"]) == {"loss", "mae", "val_loss", "val_mae"}
    assert history["epochs"][-1]["metrics"]["loss"] < history["epochs"][0]["metrics"]["loss"]

    csv_rows, records = concrete_rows(3)
    model_id = final["model_id"]
    as_json = client.post(f"/v1/models/{model_id}/predict", json={"instances": records})
    assert as_json.status_code == 200, as_json.text
    predictions = [p["Strength"] for p in as_json.json()["predictions"]]
    as_csv = client.post(
        f"/v1/models/{model_id}/predict", content=csv_rows, headers={"content-type": "text/csv"}
    )
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.headers["content-type"].startswith("text/csv")
    csv_values = [float(v) for v in as_csv.text.strip().splitlines()[1:]]
    np.testing.assert_allclose(csv_values, predictions, rtol=1e-6)

    download = client.get(f"/v1/models/{model_id}/download")
    assert download.status_code == 200
    path = embedded.logs / "model.keras"
    path.write_bytes(download.content)
    model = keras.saving.load_model(path, safe_mode=True)
    inputs = {
        feature["input"]: np.array([[r[feature["name"]]] for r in records], dtype="float32")
        for feature in client.get(f"/v1/models/{model_id}").json()["input_schema"]["features"]
    }
    np.testing.assert_allclose(model.predict_on_batch(inputs)[:, 0], predictions, rtol=1e-5)

    # Logs are JSON lines (stderr is a file here); the worker's, during the job, carry its id.
    lines = (embedded.logs / "serve.log").read_text().splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert any(record.get("job_id") == job["id"] for record in records), lines[-20:]


def test_predict_rejects_bad_rows(embedded: Service) -> None:
    client = embedded.client
    dataset = upload(client, "concrete_data.csv", "concrete-bad-rows")
    job = wait_for(client, submit(client, concrete_job(dataset["id"], epochs=1))["id"])
    _, records = concrete_rows(1)
    missing = {k: v for k, v in records[0].items() if k != "Water"}
    response = client.post(f"/v1/models/{job['model_id']}/predict", json={"instances": [missing]})
    assert response.status_code == 422
    assert response.json()["field"] == "/instances/0/Water"
    wrong = {**records[0], "Age": "old"}
    response = client.post(f"/v1/models/{job['model_id']}/predict", json={"instances": [wrong]})
    assert response.status_code == 422 and "Age" in response.json()["detail"]


def test_penguins_classifier_needs_a_missing_policy_then_returns_labels(embedded: Service) -> None:
    client = embedded.client
    dataset = upload(client, "penguins.csv", "penguins")
    body = copy.deepcopy(examples.PENGUINS_CLASSIFIER)
    body["dataset_id"] = dataset["id"]
    body["training"]["epochs"] = 30
    strict = copy.deepcopy(body)
    strict["preprocessing"]["missing"] = "error"
    rejected = client.post("/v1/jobs", json=strict)
    assert rejected.status_code == 422
    assert "bill_length_mm" in rejected.json()["detail"] and "sex" in rejected.json()["detail"]

    job = wait_for(client, submit(client, body)["id"])
    assert job["status"] == "succeeded", job["error"]
    model = client.get(f"/v1/models/{job['model_id']}").json()
    assert model["outputs"]["labels"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert model["test_metrics"]["accuracy"] > 0.8
    row = {
        "island": "Biscoe",
        "bill_length_mm": 46.5,
        "bill_depth_mm": 14.8,
        "flipper_length_mm": 217.0,
        "body_mass_g": 5200.0,
        "sex": "female",
        "year": 2008,
    }
    response = client.post(f"/v1/models/{job['model_id']}/predict", json={"instances": [row]})
    assert response.status_code == 200, response.text
    prediction = response.json()["predictions"][0]
    assert prediction["label"] == "Gentoo"
    assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


def test_mnist_course_network_trains_from_npz(embedded: Service) -> None:
    client = embedded.client
    dataset = upload(client, "mnist_small.npz", "mnist")
    assert dataset["format"] == "npz" and dataset["rows"] == 3000
    body = copy.deepcopy(examples.MNIST_CLASSIFIER)
    body["dataset_id"] = dataset["id"]
    body["training"]["epochs"] = 3
    validated = client.post("/v1/specs/validate", json=body)
    assert validated.status_code == 200, validated.text
    assert [layer["parameters"] for layer in validated.json()["layers"]] == [
        0,
        0,
        615440,
        78500,
        1010,
    ]

    job = wait_for(client, submit(client, body)["id"])
    assert job["status"] == "succeeded", job["error"]
    model = client.get(f"/v1/models/{job['model_id']}").json()
    assert model["outputs"]["labels"] == list(range(10))
    assert model["test_metrics"]["accuracy"] > 0.85
    with np.load(DATA / "mnist_small.npz", allow_pickle=False) as arrays:
        images, labels = arrays["x_test"][:20], arrays["y_test"][:20]
    response = client.post(
        f"/v1/models/{job['model_id']}/predict", json={"instances": images.tolist()}
    )
    assert response.status_code == 200, response.text
    predicted = [p["label"] for p in response.json()["predictions"]]
    assert np.mean(np.array(predicted) == labels) >= 0.8


def test_cancel_stops_a_running_job_and_a_queued_one_never_runs(embedded: Service) -> None:
    client = embedded.client
    dataset = upload(client, "concrete_data.csv", "concrete-cancel")
    running, *others = [
        submit(client, concrete_job(dataset["id"], epochs=5000)) for _ in range(EMBEDDED_SLOTS)
    ]  # every slot busy
    queued = submit(client, concrete_job(dataset["id"], epochs=5))
    for job in (running, *others):
        wait_for(client, job["id"], ("running",))
    cancelled = client.post(f"/v1/jobs/{queued['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"

    while client.get(f"/v1/jobs/{running['id']}").json()["progress"]["epoch"] < 2:
        time.sleep(0.05)
    assert client.post(f"/v1/jobs/{running['id']}/cancel").status_code == 200
    stopped = wait_for(client, running["id"], timeout=60)
    assert stopped["status"] == "cancelled"
    assert stopped["progress"]["epoch"] < 5000 and stopped["model_id"] is None
    for job in others:
        client.post(f"/v1/jobs/{job['id']}/cancel").raise_for_status()
        assert wait_for(client, job["id"], timeout=60)["status"] == "cancelled"

    after = wait_for(client, queued["id"])
    assert after["status"] == "cancelled"
    assert after["started_at"] is None and after["progress"]["epoch"] == 0
    assert client.get(f"/v1/jobs/{queued['id']}/history").json()["epochs"] == []
