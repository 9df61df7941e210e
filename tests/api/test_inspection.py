"""POST /v1/models/{id}/forward and GET /v1/models/{id}/weights over HTTP, on a model trained in
this process as a worker trains it."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.schemas import examples
from tests.api.conftest import Upload, assert_envelope, concrete_job
from workers.tasks import run_job

ROW = examples.CONCRETE_PREDICT["instances"][0]


@pytest.fixture
def model_id(client: TestClient, upload: Upload) -> str:
    upload("concrete_data.csv", name="concrete")
    body = concrete_job("concrete")
    body["training"]["epochs"] = 1
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    run_job(response.json()["id"])
    job = client.get(f"/v1/jobs/{response.json()['id']}").json()
    assert job["status"] == "succeeded", job
    return str(job["model_id"])


def test_forward_returns_every_layer_and_ends_with_the_prediction(
    client: TestClient, model_id: str
) -> None:
    response = client.post(f"/v1/models/{model_id}/forward", json={"instance": ROW})
    predicted = client.post(f"/v1/models/{model_id}/predict", json={"instances": [ROW]})

    assert response.status_code == 200, response.text
    layers = response.json()["layers"]
    names = [layer["name"] for layer in layers]
    assert names[-4:] == ["normalize", "dense_1", "dense_2", "output"]
    assert names.index("cement") < names.index("numeric") < names.index("normalize")
    assert [layer["activation"] for layer in layers[-3:]] == ["relu", "relu", "linear"]
    assert layers[-4]["output"]["shape"] == [8]
    assert layers[-1]["output"]["values"] == [
        pytest.approx(predicted.json()["predictions"][0]["Strength"], rel=1e-6)
    ]


def test_forward_bad_row_returns_422_naming_the_feature(client: TestClient, model_id: str) -> None:
    row = {k: v for k, v in ROW.items() if k != "Water"}
    response = client.post(f"/v1/models/{model_id}/forward", json={"instance": row})

    assert_envelope(response, 422, field="/instance/Water")


@pytest.mark.parametrize(
    "body", [{}, {"instances": [ROW]}, {"instance": "Cement"}], ids=["empty", "predict", "text"]
)
def test_forward_bad_body_returns_422(
    client: TestClient, model_id: str, body: dict[str, Any]
) -> None:
    assert_envelope(client.post(f"/v1/models/{model_id}/forward", json=body), 422)


def test_weights_list_each_layer_with_shapes_stats_and_small_values(
    client: TestClient, model_id: str
) -> None:
    response = client.get(f"/v1/models/{model_id}/weights")

    assert response.status_code == 200, response.text
    body = response.json()
    layers = {layer["name"]: layer for layer in body["layers"]}
    kernel, bias = layers["dense_2"]["weights"]
    assert kernel["stats"]["shape"] == [50, 50] and kernel["stats"]["values"] is None  # > 1000
    assert bias["stats"]["shape"] == [50] and len(bias["stats"]["values"]) == 50
    assert layers["output"]["parameters"] == 51 and body["max_values"] == 1000
    assert len(layers["normalize"]["weights"][0]["stats"]["values"][0]) == 8


def test_forward_and_weights_of_another_owner_or_unknown_model_are_404(
    other_client: TestClient, model_id: str
) -> None:
    for path in (model_id, "nope"):
        forward = other_client.post(f"/v1/models/{path}/forward", json={"instance": ROW})
        assert_envelope(forward, 404, field="model_id")
        assert_envelope(other_client.get(f"/v1/models/{path}/weights"), 404, field="model_id")
