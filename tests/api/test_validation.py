"""POST /v1/specs/validate: a job request checked and its network built, without training."""

from typing import Any

from fastapi.testclient import TestClient

from service.core.config import Settings
from tests.api.conftest import Upload, assert_envelope, concrete_job, mnist_job

CONCRETE_FEATURES = [
    "Cement", "Blast Furnace Slag", "Fly Ash", "Water", "Superplasticizer",
    "Coarse Aggregate", "Fine Aggregate", "Age",
]  # fmt: skip


def dense_layers(summary: dict[str, Any]) -> list[tuple[list[int | None], int]]:
    return [
        (layer["output_shape"], layer["parameters"])
        for layer in summary["layers"]
        if layer["type"] == "Dense"
    ]


def test_validate_concrete_course_network_counts_parameters(
    client: TestClient, upload: Upload
) -> None:
    upload("concrete_data.csv", name="concrete")

    response = client.post("/v1/specs/validate", json=concrete_job("concrete"))

    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["valid"] is True
    assert summary["inputs"] == CONCRETE_FEATURES
    assert dense_layers(summary) == [([None, 50], 450), ([None, 50], 2550), ([None, 1], 51)]
    assert summary["layers"][-1]["name"] == "output"
    assert summary["parameters"] == summary["trainable_parameters"] == 3051
    assert (summary["loss"], summary["metrics"], summary["epochs"]) == (
        "mean_squared_error",
        ["mae"],
        100,
    )
    assert summary["output_units"] == 1 and summary["labels"] is None


def test_validate_mnist_course_network_counts_parameters(
    client: TestClient, upload: Upload
) -> None:
    upload("mnist_small.npz", name="mnist")

    response = client.post("/v1/specs/validate", json=mnist_job("mnist"))

    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["inputs"] == ["x"]
    flatten = next(layer for layer in summary["layers"] if layer["type"] == "Flatten")
    assert flatten["output_shape"] == [None, 784]
    assert dense_layers(summary) == [
        ([None, 784], 615440),
        ([None, 100], 78500),
        ([None, 10], 1010),
    ]
    assert summary["parameters"] == 615440 + 78500 + 1010
    assert summary["output_units"] == 10 and summary["labels"] == list(range(10))
    assert summary["loss"] == "categorical_crossentropy"
    # Training memory at batch 32 with adam: weights, gradients and 2 slots; 1,678 activations
    # per image (flatten, dense, dense, output), twice for the backward pass; the input batch.
    assert summary["training_memory"] == {
        "total_mb": round((694_950 * 4 * 4 + 32 * 1678 * 4 * 2 + 32 * 784 * 4) / 2**20, 3),
        "weights_mb": round(694_950 * 4 * 4 / 2**20, 3),
        "activations_mb": round(32 * 1678 * 4 * 2 / 2**20, 3),
        "input_mb": round(32 * 784 * 4 / 2**20, 3),
        "batch_size": 32,
        "limit_mb": 4096,
    }


def test_validate_penguins_one_hot_encodes_string_features(
    client: TestClient, upload: Upload
) -> None:
    upload("penguins.csv", name="penguins")
    body = {
        "dataset_id": "penguins",
        "task": "classification",
        "target": "species",
        "features": ["island", "bill_length_mm"],
        "preprocessing": {"missing": "drop"},
        "network": {"layers": [{"type": "dense", "units": 8}]},
    }

    response = client.post("/v1/specs/validate", json=body)

    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["labels"] == ["Adelie", "Chinstrap", "Gentoo"]
    # bill_length_mm plus island one-hot (3 islands and the out-of-vocabulary slot) feed the dense.
    assert dense_layers(summary) == [([None, 8], (1 + 4) * 8 + 8), ([None, 3], 8 * 3 + 3)]


def test_validate_creates_no_job_and_queues_nothing(
    client: TestClient, upload: Upload, settings: Settings
) -> None:
    upload("concrete_data.csv", name="concrete")

    assert client.post("/v1/specs/validate", json=concrete_job("concrete")).status_code == 200

    assert client.get("/v1/jobs").json()["total"] == 0
    assert not any(path.is_file() for path in (settings.broker_dir / "queue").glob("*"))


def test_validate_unknown_dataset_returns_404(client: TestClient) -> None:
    body = assert_envelope(
        client.post("/v1/specs/validate", json=concrete_job("missing")), 404, field="dataset_id"
    )
    assert "missing" in body["detail"]


def test_validate_image_layer_on_table_returns_422(client: TestClient, upload: Upload) -> None:
    upload("concrete_data.csv", name="concrete")
    body = concrete_job("concrete")
    body["network"]["layers"].insert(0, {"type": "conv2d", "filters": 4})

    response = client.post("/v1/specs/validate", json=body)

    assert_envelope(response, 422, field="/network/layers/0/type")
