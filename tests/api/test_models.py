"""/v1/models over HTTP without a trained model: lookups and the errors around predict.

Predictions from a trained model are covered by the end-to-end tests (tests/e2e).
"""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.schemas import examples
from tests.api.conftest import Upload, assert_envelope, concrete_job


@pytest.fixture
def queued_job(client: TestClient, upload: Upload) -> dict[str, Any]:
    upload("concrete_data.csv", name="concrete")
    response = client.post("/v1/jobs", json=concrete_job("concrete"))
    assert response.status_code == 202, response.text
    return dict(response.json())


def test_list_models_without_training_is_empty(client: TestClient) -> None:
    response = client.get("/v1/models")

    assert response.status_code == 200, response.text
    assert response.json() == {"items": [], "total": 0, "limit": 50, "offset": 0}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models/nope"),
        ("GET", "/v1/models/nope/download"),
        ("POST", "/v1/models/nope/predict"),
    ],
)
def test_request_unknown_model_returns_404_envelope(
    client: TestClient, method: str, path: str
) -> None:
    response = client.request(method, path, json=examples.CONCRETE_PREDICT)

    body = assert_envelope(response, 404, field="model_id")
    assert body["error"] == "not_found" and "nope" in body["detail"]


def test_predict_with_queued_job_id_returns_409_job_has_no_model(
    client: TestClient, queued_job: dict[str, Any]
) -> None:
    response = client.post(f"/v1/models/{queued_job['id']}/predict", json=examples.CONCRETE_PREDICT)

    body = assert_envelope(response, 409, field="model_id")
    assert "is a job" in body["detail"] and "queued" in body["detail"]
    assert "only a succeeded job has a model" in body["detail"]


def test_predict_with_cancelled_job_id_returns_409_saying_why(
    client: TestClient, queued_job: dict[str, Any]
) -> None:
    client.post(f"/v1/jobs/{queued_job['id']}/cancel")

    response = client.post(f"/v1/models/{queued_job['id']}/predict", json=examples.CONCRETE_PREDICT)

    body = assert_envelope(response, 409, field="model_id")
    assert "cancelled" in body["detail"] and "only a succeeded job has a model" in body["detail"]


def test_get_model_with_job_id_returns_409(client: TestClient, queued_job: dict[str, Any]) -> None:
    assert_envelope(client.get(f"/v1/models/{queued_job['id']}"), 409, field="model_id")


def test_predict_unsupported_content_type_returns_415(client: TestClient) -> None:
    response = client.post(
        "/v1/models/nope/predict", content=b"<rows/>", headers={"Content-Type": "application/xml"}
    )

    body = assert_envelope(response, 415)
    assert "application/xml" in body["detail"]
    assert "application/json" in body["detail"] and "text/csv" in body["detail"]


def test_predict_without_instances_returns_422(client: TestClient) -> None:
    response = client.post("/v1/models/nope/predict", json={"instances": []})

    body = assert_envelope(response, 422, field="/instances")
    assert "instances" in body["detail"]


def test_predict_invalid_json_returns_422(client: TestClient) -> None:
    response = client.post(
        "/v1/models/nope/predict",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )

    assert_envelope(response, 422)


def test_predict_empty_csv_returns_422(client: TestClient) -> None:
    response = client.post(
        "/v1/models/nope/predict", content=b"Cement,Age\n", headers={"Content-Type": "text/csv"}
    )

    body = assert_envelope(response, 422)
    assert "no rows" in body["detail"]
