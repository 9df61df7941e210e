"""POST /v1/batch-predictions over HTTP, with the batch run in this process as a worker runs it:
result files in input order equal to /v1 predictions, the errors file, metrics, chunked progress,
cancel, events, every refusal, and the files' part in deletes and quotas."""

import io
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from service import datasets
from service.core import storage
from service.core.config import get_settings
from service.core.db import session_scope
from tests.api.conftest import OWNER, Upload, assert_envelope, concrete_job, mnist_job, upload_bytes
from tests.conftest import DATA
from workers.tasks import run_job

Submit = Callable[..., dict[str, Any]]


def _train(client: TestClient, body: dict[str, Any]) -> str:
    body["training"] = {**body.get("training", {}), "epochs": 2}
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    run_job(response.json()["id"])
    job = client.get(f"/v1/jobs/{response.json()['id']}").json()
    assert job["status"] == "succeeded", job
    return str(job["model_id"])


@pytest.fixture
def concrete_model(client: TestClient, upload: Upload) -> str:
    upload("concrete_data.csv", name="concrete")
    return _train(client, concrete_job("concrete"))


@pytest.fixture
def penguins_model(client: TestClient, upload: Upload) -> str:
    upload("penguins.csv", name="penguins")
    body = {
        "dataset_id": "penguins",
        "task": "classification",
        "target": "species",
        "preprocessing": {"missing": "drop"},
        "network": {"layers": [{"type": "dense", "units": 8, "activation": "relu"}]},
    }
    return _train(client, body)


def _scoring_data(client: TestClient) -> tuple[str, pd.DataFrame]:
    """The concrete rows with an `id` column and three rows missing their cement."""
    frame = pd.read_csv(DATA / "concrete_data.csv", skipinitialspace=True)
    frame.insert(0, "id", [f"c{i:04d}" for i in range(len(frame))])
    frame.loc[[3, 500, 1029], "Cement"] = np.nan
    body = frame.to_csv(index=False).encode()
    dataset = upload_bytes(client, body, "scoring.csv").json()
    return dataset["id"], frame


def _submit(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/batch-predictions", json=body)
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"/v1/batch-predictions/{response.json()['id']}"
    return dict(response.json())


def _run(client: TestClient, batch_id: str) -> dict[str, Any]:
    run_job(batch_id)
    return dict(client.get(f"/v1/batch-predictions/{batch_id}").json())


def _predict(client: TestClient, model: str, rows: pd.DataFrame) -> list[Any]:
    instances = json.loads(rows.to_json(orient="records"))
    response = client.post(f"/v1/models/{model}/predict", json={"instances": instances})
    assert response.status_code == 200, response.text
    return list(response.json()["predictions"])


def test_concrete_csv_in_order_with_errors_and_metrics(
    client: TestClient, concrete_model: str
) -> None:
    dataset_id, frame = _scoring_data(client)
    batch = _submit(
        client,
        model=concrete_model,
        dataset_id=dataset_id,
        passthrough_columns=["id"],
        chunk_rows=100,
    )
    assert batch["status"] == "queued"
    assert batch["progress"] == {"rows_done": 0, "rows_total": 1030, "rows_failed": 0}
    done = _run(client, batch["id"])
    assert done["status"] == "succeeded", done
    assert done["progress"] == {"rows_done": 1030, "rows_total": 1030, "rows_failed": 3}
    assert set(done["metrics"]) >= {"mse", "rmse", "mae", "r2", "rows"}
    assert done["metrics"]["rows"] == 1027

    result = client.get(done["links"]["result"])
    assert result.status_code == 200
    assert result.headers["content-type"].startswith("text/csv")
    scored = pd.read_csv(io.BytesIO(result.content))
    assert list(scored.columns) == ["row", "id", "prediction"]
    kept = [i for i in range(1030) if i not in (3, 500, 1029)]
    assert scored["row"].tolist() == kept  # input order, the failed rows left out
    assert scored["id"].tolist() == frame["id"].iloc[kept].tolist()
    features = frame.drop(columns=["id", "Strength"])
    sample = [0, 4, 499, 501, 1028]
    expected = _predict(client, concrete_model, features.iloc[sample])
    got = scored.set_index("row").loc[sample, "prediction"].tolist()
    assert np.allclose(got, [p["Strength"] for p in expected], atol=1e-4)
    # The metrics are those of the result file against the targets.
    truth = frame["Strength"].iloc[kept].to_numpy()
    assert done["metrics"]["mse"] == pytest.approx(
        float(((scored["prediction"].to_numpy() - truth) ** 2).mean()), rel=1e-5
    )

    errors = pd.read_csv(io.BytesIO(client.get(done["links"]["errors"]).content))
    assert errors["row"].tolist() == [3, 500, 1029]
    assert set(errors["column"]) == {"Cement"}
    assert errors["reason"].str.contains("missing value").all()


@pytest.mark.parametrize("output_format", ["parquet", "jsonl"])
def test_other_formats_hold_the_same_rows(
    client: TestClient, concrete_model: str, output_format: str
) -> None:
    dataset_id, _frame = _scoring_data(client)
    common = {"model": concrete_model, "dataset_id": dataset_id, "passthrough_columns": ["id"]}
    as_csv = _run(client, _submit(client, **common)["id"])
    other = _run(client, _submit(client, **common, output_format=output_format)["id"])
    assert other["status"] == "succeeded", other
    reference = pd.read_csv(io.BytesIO(client.get(as_csv["links"]["result"]).content))
    content = client.get(other["links"]["result"]).content
    if output_format == "parquet":
        frame = pd.read_parquet(io.BytesIO(content))
        assert str(frame["row"].dtype) == "int64"
    else:
        frame = pd.DataFrame([json.loads(line) for line in content.decode().splitlines()])
    assert frame["row"].tolist() == reference["row"].tolist()
    assert frame["id"].tolist() == reference["id"].tolist()
    assert np.allclose(frame["prediction"], reference["prediction"], atol=1e-6)


def test_classification_probabilities_unknown_categories_and_an_alias(
    client: TestClient, penguins_model: str
) -> None:
    client.post("/v1/registered-models", json={"name": "penguins"})
    client.post("/v1/registered-models/penguins/versions", json={"model_id": penguins_model})
    client.put("/v1/registered-models/penguins/aliases/production", json={"version": 1})
    frame = pd.read_csv(DATA / "penguins.csv").dropna().reset_index(drop=True).head(40)
    frame.loc[7, "island"] = "Atlantis"
    dataset = upload_bytes(client, frame.to_csv(index=False).encode(), "penguins-new.csv").json()

    batch = _submit(client, model="penguins@production", dataset_id=dataset["id"])
    assert batch["model"] == "penguins@production"
    assert batch["model_id"] == penguins_model
    done = _run(client, batch["id"])
    assert done["status"] == "succeeded", done
    assert done["progress"]["rows_failed"] == 1
    assert set(done["metrics"]) == {"accuracy", "log_loss", "rows"}
    assert done["metrics"]["rows"] == 39
    scored = pd.read_csv(io.BytesIO(client.get(done["links"]["result"]).content))
    labels = ["Adelie", "Chinstrap", "Gentoo"]
    assert list(scored.columns) == ["row", "prediction", *(f"probability_{x}" for x in labels)]
    assert np.allclose(scored[[f"probability_{x}" for x in labels]].sum(axis=1), 1.0, atol=1e-5)
    features = frame.drop(columns=["species"]).drop(index=7)
    expected = _predict(client, penguins_model, features.head(5))
    assert scored["prediction"].head(5).tolist() == [p["label"] for p in expected]
    for p, (_, row) in zip(expected, scored.head(5).iterrows(), strict=True):
        for label in labels:
            assert row[f"probability_{label}"] == pytest.approx(p["probabilities"][label], abs=1e-6)
    errors = pd.read_csv(io.BytesIO(client.get(done["links"]["errors"]).content))
    assert errors.to_dict("records")[0]["row"] == 7
    assert "unknown category 'Atlantis'" in errors["reason"][0]


def test_mnist_arrays(client: TestClient, upload: Upload) -> None:
    upload("mnist_small.npz", name="mnist")
    body = mnist_job("mnist")
    body["network"]["layers"] = [{"type": "flatten"}, {"type": "dense", "units": 16}]
    model = _train(client, body)
    done = _run(client, _submit(client, model=model, dataset_id="mnist", chunk_rows=300)["id"])
    assert done["status"] == "succeeded", done
    assert done["array"] == "x_test"
    assert done["progress"] == {"rows_done": 1000, "rows_total": 1000, "rows_failed": 0}
    assert 0.5 < done["metrics"]["accuracy"] <= 1.0
    scored = pd.read_csv(io.BytesIO(client.get(done["links"]["result"]).content))
    assert scored["row"].tolist() == list(range(1000))
    assert list(scored.columns) == ["row", "prediction", *(f"probability_{d}" for d in range(10))]


def test_refusals_name_the_field(
    client: TestClient, other_client: TestClient, concrete_model: str, upload: Upload
) -> None:
    dataset_id, _ = _scoring_data(client)

    def refused(status: int, field: str | None, **body: Any) -> dict[str, Any]:
        response = client.post("/v1/batch-predictions", json=body)
        return assert_envelope(response, status, field)

    penguins = upload("penguins.csv", name="penguins")
    refused(422, "dataset_id", model=concrete_model, dataset_id=penguins["id"])
    refused(422, "passthrough_columns/0", model=concrete_model, dataset_id=dataset_id,
            passthrough_columns=["nope"])  # fmt: skip
    refused(422, "passthrough_columns/1", model=concrete_model, dataset_id=dataset_id,
            passthrough_columns=["id", "id"])  # fmt: skip
    upload("mnist_small.npz", name="mnist")
    refused(422, "dataset_id", model=concrete_model, dataset_id="mnist")
    refused(404, "model", model="nothing@production", dataset_id=dataset_id)
    refused(404, "model", model="0" * 32, dataset_id=dataset_id)
    refused(422, None, model=concrete_model, dataset_id=dataset_id, output_format="xlsx")
    refused(422, None, model=concrete_model, dataset_id=dataset_id, chunk_rows=10)
    # Another owner sees neither the model nor the batch.
    response = other_client.post(
        "/v1/batch-predictions", json={"model": concrete_model, "dataset_id": dataset_id}
    )
    assert_envelope(response, 404)
    batch = _submit(client, model=concrete_model, dataset_id=dataset_id)
    assert_envelope(other_client.get(f"/v1/batch-predictions/{batch['id']}"), 404)
    assert_envelope(client.get(f"/v1/jobs/{batch['id']}"), 404)  # not a training job
    assert batch["id"] not in [j["id"] for j in client.get("/v1/jobs").json()["items"]]
    # Its files exist once it succeeded.
    assert_envelope(client.get(f"/v1/batch-predictions/{batch['id']}/result"), 409)
    assert_envelope(client.delete(f"/v1/batch-predictions/{batch['id']}"), 409)


def test_cancel_events_list_and_delete(client: TestClient, concrete_model: str) -> None:
    dataset_id, _ = _scoring_data(client)
    queued = _submit(client, model=concrete_model, dataset_id=dataset_id)
    cancelled = client.post(f"/v1/batch-predictions/{queued['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert_envelope(client.post(f"/v1/batch-predictions/{queued['id']}/cancel"), 409)

    batch = _submit(client, model=concrete_model, dataset_id=dataset_id, chunk_rows=500)
    done = _run(client, batch["id"])
    with client.stream("GET", done["links"]["events"]) as stream:
        text = "".join(stream.iter_text())
    names = [line.removeprefix("event: ") for line in text.splitlines() if line.startswith("event")]
    assert names == ["progress", "status"]  # a finished job: where it got, then how it ended
    assert '"rows_done":1030' in text

    listed = client.get("/v1/batch-predictions", params={"status": "succeeded"}).json()
    assert [item["id"] for item in listed["items"]] == [batch["id"]]
    assert client.delete(f"/v1/batch-predictions/{batch['id']}").status_code == 204
    assert_envelope(client.get(done["links"]["result"]), 404)


def test_files_count_in_quota_and_go_with_the_dataset(
    client: TestClient, concrete_model: str
) -> None:
    dataset_id, _ = _scoring_data(client)
    done = _run(client, _submit(client, model=concrete_model, dataset_id=dataset_id)["id"])
    assert done["result_bytes"] > 1030 * 10
    with session_scope() as session:
        used = datasets.storage_used(session, OWNER)
    assert used >= done["result_bytes"] + done["errors_bytes"]

    refused = client.delete(f"/v1/datasets/{dataset_id}")
    assert refused.status_code == 409
    body = refused.json()
    assert body["dependents"]["batch_predictions"]["ids"] == [done["id"]]
    assert (
        client.delete(f"/v1/datasets/{dataset_id}", params={"cascade": "true"}).status_code == 204
    )
    assert_envelope(client.get(f"/v1/batch-predictions/{done['id']}"), 404)
    root = storage.local_root()
    assert root is not None
    folder = root / "predictions" / done["id"]
    assert not folder.exists() or not any(folder.iterdir())


def test_the_webhook_carries_the_batch_prediction(client: TestClient, concrete_model: str) -> None:
    dataset_id, _ = _scoring_data(client)
    batch = _submit(
        client, model=concrete_model, dataset_id=dataset_id, callback_url="https://example.com/h"
    )
    _run(client, batch["id"])
    # The app's delivery loop (its lifespan runs) takes the delivery once the batch ended.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        [delivery] = client.get(f"/v1/batch-predictions/{batch['id']}/deliveries").json()
        if delivery["attempts"]:
            break
        time.sleep(0.2)
    assert delivery["url"] == "https://example.com/h"
    assert delivery["attempts"], delivery  # this sandbox reaches no public host: it failed


def test_a_result_past_the_storage_quota_fails_and_leaves_no_file(
    client: TestClient, concrete_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset_id, _ = _scoring_data(client)
    with session_scope() as session:
        used = datasets.storage_used(session, OWNER)
    monkeypatch.setenv("DENDRITE_MAX_STORAGE_BYTES_PER_OWNER", str(used + 2000))
    get_settings.cache_clear()
    batch = _submit(client, model=concrete_model, dataset_id=dataset_id, chunk_rows=100)
    done = _run(client, batch["id"])
    assert done["status"] == "failed"
    assert "DENDRITE_MAX_STORAGE_BYTES_PER_OWNER" in done["error"]
    assert done["result_bytes"] == 0
    root = storage.local_root()
    assert root is not None
    folder = root / "predictions" / batch["id"]
    assert not folder.exists() or not any(folder.iterdir())
    # Spent: the next one is refused up front.
    monkeypatch.setenv("DENDRITE_MAX_STORAGE_BYTES_PER_OWNER", str(used))
    get_settings.cache_clear()
    refused = client.post(
        "/v1/batch-predictions", json={"model": concrete_model, "dataset_id": dataset_id}
    )
    assert "no room for a result file" in assert_envelope(refused, 413, "dataset_id")["detail"]
