"""The Open Inference Protocol (KServe v2) on a real `dendrite serve`, spoken by a client written by
someone else for that protocol (`open-inference-openapi`): metadata, readiness, and `infer` outputs
equal to `/v1` predictions; the protocol's errors for a wrong shape or datatype."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from open_inference.openapi import InferenceRequest, RequestInput, RequestOutput
from open_inference.openapi.client import OpenInferenceClient
from open_inference.openapi.core.api_error import ApiError

from tests.e2e.conftest import Service
from tests.e2e.flows import concrete_job, concrete_rows, submit, upload, wait_for

FEATURES = [
    "Cement",
    "Blast Furnace Slag",
    "Fly Ash",
    "Water",
    "Superplasticizer",
    "Coarse Aggregate",
    "Fine Aggregate",
    "Age",
]


@pytest.fixture(scope="module")
def served(embedded: Service) -> dict[str, Any]:
    """A registered model `strength-v2` with two versions, `production` on version 1."""
    client = embedded.client
    dataset = upload(client, "concrete_data.csv", "concrete-v2")
    model_ids = []
    for seed in (3, 4):
        body = concrete_job(dataset["id"], epochs=3)
        body["training"]["seed"] = seed
        job = wait_for(client, submit(client, body)["id"])
        assert job["status"] == "succeeded", job
        model_ids.append(job["model_id"])
    client.post("/v1/registered-models", json={"name": "strength-v2"}).raise_for_status()
    for model_id in model_ids:
        client.post(
            "/v1/registered-models/strength-v2/versions", json={"model_id": model_id}
        ).raise_for_status()
    client.put(
        "/v1/registered-models/strength-v2/aliases/production", json={"version": 1}
    ).raise_for_status()
    return {"models": model_ids}


@pytest.fixture
def oip(embedded: Service) -> Iterator[OpenInferenceClient]:
    with httpx.Client(headers=dict(embedded.client.headers), timeout=60) as http:
        yield OpenInferenceClient(base_url=str(embedded.client.base_url), httpx_client=http)


def _v1(embedded: Service, model: str, rows: list[dict[str, Any]]) -> list[float]:
    response = embedded.client.post(f"/v1/models/{model}/predict", json={"instances": rows})
    response.raise_for_status()
    return [p["Strength"] for p in response.json()["predictions"]]


def test_health_server_metadata_and_readiness(oip: OpenInferenceClient, served: Any) -> None:
    oip.check_server_liveness()
    oip.check_server_readiness()
    assert oip.read_server_metadata().name == "dendrite"
    oip.check_model_readiness("strength-v2")
    oip.check_model_version_readiness("strength-v2", "2")
    with pytest.raises(ApiError) as missing:
        oip.check_model_version_readiness("strength-v2", "7")
    assert missing.value.status_code == 404 and "version 7" in missing.value.body["error"]


def test_model_metadata_lists_one_input_per_column(oip: OpenInferenceClient, served: Any) -> None:
    metadata = oip.read_model_metadata("strength-v2")

    assert metadata.name == "strength-v2" and metadata.versions == ["1", "2"]
    assert metadata.inputs is not None and metadata.outputs is not None
    assert [(i.name, i.datatype, i.shape) for i in metadata.inputs] == [
        (name, "FP32", [-1, 1]) for name in FEATURES
    ]
    assert [(o.name, o.datatype, o.shape) for o in metadata.outputs] == [("Strength", "FP32", [-1])]
    assert oip.read_model_version_metadata("strength-v2", "2").versions == ["1", "2"]


def test_infer_equals_v1_predictions(
    oip: OpenInferenceClient, embedded: Service, served: Any
) -> None:
    _, rows = concrete_rows(5)
    per_column = InferenceRequest(
        inputs=[
            RequestInput(name=name, shape=[5, 1], datatype="FP32", data=[r[name] for r in rows])
            for name in FEATURES
        ],
        outputs=[RequestOutput(name="Strength")],
    )
    one_tensor = InferenceRequest(
        inputs=[
            RequestInput(
                name="input",
                shape=[5, len(FEATURES)],
                datatype="FP32",
                data=[r[name] for r in rows for name in FEATURES],
            )
        ]
    )

    by_default = oip.model_infer("strength-v2", request=per_column)  # production: version 1
    by_version = oip.model_version_infer("strength-v2", "2", request=one_tensor)

    assert by_default.model_version == "1" and by_version.model_version == "2"
    ((first,),) = [by_default.outputs]
    assert first.name == "Strength" and first.shape == [5]
    assert first.data.__root__ == pytest.approx(_v1(embedded, served["models"][0], rows), abs=1e-6)
    second = by_version.outputs[0].data.__root__
    assert second == pytest.approx(_v1(embedded, served["models"][1], rows), abs=1e-6)


def test_moving_production_changes_what_infer_serves(
    oip: OpenInferenceClient, embedded: Service, served: Any
) -> None:
    _, rows = concrete_rows(1)
    request = InferenceRequest(
        inputs=[
            RequestInput(name=name, shape=[1], datatype="FP32", data=[rows[0][name]])
            for name in FEATURES
        ]
    )
    client = embedded.client
    try:
        client.put("/v1/registered-models/strength-v2/aliases/production", json={"version": 2})
        answer = oip.model_infer("strength-v2", request=request)
        assert answer.model_version == "2"
        assert answer.outputs[0].data.__root__ == pytest.approx(
            _v1(embedded, served["models"][1], rows), abs=1e-6
        )
    finally:
        client.put("/v1/registered-models/strength-v2/aliases/production", json={"version": 1})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"shape": [2, 1]}, "holds 2 values, data has 1"),
        ({"datatype": "BYTES", "data": ["x"]}, "datatype BYTES"),
        ({"datatype": "FP99"}, "unknown datatype"),
        ({"name": "Cementt"}, "not a feature"),
    ],
)
def test_a_wrong_input_is_a_400_with_the_protocols_error(
    embedded: Service, served: Any, change: dict[str, Any], message: str
) -> None:
    _, rows = concrete_rows(1)
    inputs = [
        {"name": name, "shape": [1], "datatype": "FP32", "data": [rows[0][name]]}
        for name in FEATURES
    ]
    inputs[0] |= change
    # Sent raw: the client's types would refuse some of these before they reach the server.
    response = embedded.client.post("/v2/models/strength-v2/infer", json={"inputs": inputs})

    assert response.status_code == 400
    assert set(response.json()) == {"error"} and message in response.json()["error"]


def test_an_unknown_model_is_a_404(oip: OpenInferenceClient, served: Any) -> None:
    with pytest.raises(ApiError) as missing:
        oip.read_model_metadata("nope")
    assert missing.value.status_code == 404 and set(missing.value.body) == {"error"}
