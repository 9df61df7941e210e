"""GET /v1/models/{id}/export over HTTP, on models trained in this process as a worker trains
them: the exported SavedModel and ONNX file give the service's own predictions."""

import io
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import Upload, assert_envelope, concrete_job, mnist_job
from tests.conftest import DATA
from workers.tasks import run_job

ROWS = 7  # rows of each data set sent to both the service and the exported model


def _train(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    """The model (GET /v1/models/{id}) of a job run to the end in this process."""
    body["training"] = {**body.get("training", {}), "epochs": 1}
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    run_job(response.json()["id"])
    job = client.get(f"/v1/jobs/{response.json()['id']}").json()
    assert job["status"] == "succeeded", job
    model: dict[str, Any] = client.get(f"/v1/models/{job['model_id']}").json()
    return model


@pytest.fixture
def concrete_model(client: TestClient, upload: Upload) -> dict[str, Any]:
    upload("concrete_data.csv", name="concrete")
    return _train(client, concrete_job("concrete"))


@pytest.fixture
def penguins_model(client: TestClient, upload: Upload) -> dict[str, Any]:
    upload("penguins.csv", name="penguins")
    body = {
        "dataset_id": "penguins",
        "task": "classification",
        "target": "species",
        "preprocessing": {"missing": "drop"},
        "network": {"layers": [{"type": "dense", "units": 8, "activation": "relu"}]},
    }
    return _train(client, body)


@pytest.fixture
def mnist_model(client: TestClient, upload: Upload) -> dict[str, Any]:
    upload("mnist_small.npz", name="mnist")
    body = mnist_job("mnist")
    body["network"]["layers"] = [{"type": "flatten"}, {"type": "dense", "units": 16}]
    return _train(client, body)


@pytest.fixture
def export_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder the exports' temporary files go to, to check that none is left behind."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _rows(filename: str, target: str) -> list[dict[str, Any]]:
    frame = pd.read_csv(DATA / filename).dropna().drop(columns=[target]).head(ROWS)
    rows: list[dict[str, Any]] = frame.to_dict("records")
    return rows


def _predicted(client: TestClient, model: dict[str, Any], rows: list[Any]) -> Any:
    """The service's predictions as one array: targets, or probabilities in the labels' order."""
    response = client.post(f"/v1/models/{model['id']}/predict", json={"instances": rows})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    labels = model["outputs"].get("labels")
    if labels is not None:
        return np.array([[p["probabilities"][str(k)] for k in labels] for p in predictions])
    return np.array([[p[t] for t in model["outputs"]["targets"]] for p in predictions])


def _inputs(model: dict[str, Any], rows: list[Any]) -> dict[str, np.ndarray]:
    """Rows as the exported model takes them: one [n, 1] array per input, by input name (a
    tabular model), or the one array `x` (an array model)."""
    if model["input_schema"]["kind"] == "array":
        return {"x": np.asarray(rows, dtype="float32")}
    inputs = {}
    for feature in model["input_schema"]["features"]:
        values = [row[feature["name"]] for row in rows]
        dtype = "float32" if feature["kind"] == "numeric" else object
        inputs[feature["input"]] = np.asarray(values, dtype=dtype).reshape(-1, 1)
    return inputs


def _export(client: TestClient, model_id: str, export_format: str) -> bytes:
    response = client.get(f"/v1/models/{model_id}/export", params={"format": export_format})
    assert response.status_code == 200, response.text
    assert response.headers["content-length"] == str(len(response.content))
    suffix = ".onnx" if export_format == "onnx" else "-savedmodel.tar.gz"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="dendrite-{model_id}{suffix}"'
    )
    return response.content


def _savedmodel_predictions(
    archive: bytes, model: dict[str, Any], rows: list[Any], folder: Path
) -> Any:
    import tensorflow as tf

    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(folder, filter="data")
    assert (folder / model["id"] / "1" / "saved_model.pb").is_file()  # a TF Serving base path
    loaded = tf.saved_model.load(str(folder / model["id"] / "1"))
    serving = loaded.signatures["serving_default"]
    inputs = _inputs(model, rows)
    specs = serving.structured_input_signature[1]
    assert {name: spec.shape.as_list()[1:] for name, spec in specs.items()} == {
        name: list(values.shape[1:]) for name, values in inputs.items()
    }
    tensors = {
        name: tf.constant(values.astype(str) if values.dtype == object else values)
        for name, values in inputs.items()
    }
    return serving(**tensors)["output"].numpy()


def test_savedmodel_export_predicts_as_the_service(
    client: TestClient, concrete_model: dict[str, Any], export_tmp: Path, tmp_path: Path
) -> None:
    rows = _rows("concrete_data.csv", "Strength")

    archive = _export(client, concrete_model["id"], "savedmodel")

    exported = _savedmodel_predictions(archive, concrete_model, rows, tmp_path / "extracted")
    np.testing.assert_allclose(exported, _predicted(client, concrete_model, rows), atol=1e-5)
    assert list(export_tmp.glob("dendrite-export-*")) == []


def test_onnx_export_predicts_as_the_service(
    client: TestClient, concrete_model: dict[str, Any], export_tmp: Path
) -> None:
    import onnxruntime

    rows = _rows("concrete_data.csv", "Strength")

    onnx_file = _export(client, concrete_model["id"], "onnx")

    session = onnxruntime.InferenceSession(onnx_file, providers=["CPUExecutionProvider"])
    inputs = _inputs(concrete_model, rows)
    assert {i.name for i in session.get_inputs()} == set(inputs)
    assert all(i.shape[1:] == [1] for i in session.get_inputs())
    assert [o.name for o in session.get_outputs()] == ["output"]
    (exported,) = session.run(["output"], inputs)
    np.testing.assert_allclose(exported, _predicted(client, concrete_model, rows), atol=1e-5)
    assert list(export_tmp.glob("dendrite-export-*")) == []


def test_array_model_exports_take_raw_pixels_as_x(
    client: TestClient, mnist_model: dict[str, Any], tmp_path: Path
) -> None:
    import onnxruntime

    with np.load(DATA / "mnist_small.npz") as data:
        rows = data["x_test"][:ROWS].tolist()  # raw 0-255 pixels: the model rescales them
    expected = _predicted(client, mnist_model, rows)

    archive = _export(client, mnist_model["id"], "savedmodel")
    onnx_file = _export(client, mnist_model["id"], "onnx")

    saved = _savedmodel_predictions(archive, mnist_model, rows, tmp_path / "extracted")
    np.testing.assert_allclose(saved, expected, atol=1e-5)
    session = onnxruntime.InferenceSession(onnx_file, providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape[1:]) for i in session.get_inputs()] == [("x", [28, 28])]
    (exported,) = session.run(["output"], _inputs(mnist_model, rows))
    np.testing.assert_allclose(exported, expected, atol=1e-5)


def test_onnx_export_of_an_activation_onnx_lacks_is_409_naming_the_operation(
    client: TestClient, upload: Upload
) -> None:
    upload("concrete_data.csv", name="concrete")
    body = concrete_job("concrete")
    body["network"]["layers"] = [{"type": "dense", "units": 8, "activation": "gelu"}]
    model = _train(client, body)

    response = client.get(f"/v1/models/{model['id']}/export", params={"format": "onnx"})

    detail = assert_envelope(response, 409, field="format")["detail"]
    assert "Erfc" in detail and "format=savedmodel" in detail


def test_string_features_export_as_savedmodel_but_onnx_is_409(
    client: TestClient, penguins_model: dict[str, Any], export_tmp: Path, tmp_path: Path
) -> None:
    rows = _rows("penguins.csv", "species")

    refused = client.get(f"/v1/models/{penguins_model['id']}/export", params={"format": "onnx"})
    archive = _export(client, penguins_model["id"], "savedmodel")

    body = assert_envelope(refused, 409, field="format")
    assert body["error"] == "conflict"
    assert "island" in body["detail"] and "sex" in body["detail"]
    assert "StringLookup" in body["detail"] and "format=savedmodel" in body["detail"]
    exported = _savedmodel_predictions(archive, penguins_model, rows, tmp_path / "extracted")
    np.testing.assert_allclose(exported, _predicted(client, penguins_model, rows), atol=1e-5)
    assert list(export_tmp.glob("dendrite-export-*")) == []


@pytest.mark.parametrize("params", [{"format": "pmml"}, {"format": ""}, {}])
def test_export_bad_or_missing_format_returns_422_naming_it(
    client: TestClient, params: dict[str, str]
) -> None:
    response = client.get("/v1/models/nope/export", params=params)

    assert_envelope(response, 422, field="format")


def test_export_another_owners_model_is_404_as_a_missing_one(
    other_client: TestClient, concrete_model: dict[str, Any]
) -> None:
    for export_format in ("savedmodel", "onnx"):
        params = {"format": export_format}
        hidden = other_client.get(f"/v1/models/{concrete_model['id']}/export", params=params)
        missing = other_client.get("/v1/models/nope/export", params=params)

        body = assert_envelope(hidden, 404, field="model_id")
        assert body == {**assert_envelope(missing, 404), "detail": body["detail"]}
        assert body["detail"] == missing.json()["detail"].replace("nope", concrete_model["id"])
