"""Two owners: neither can read, list, preview, train on, predict with, download, cancel or delete
the other's datasets, jobs and models. Another owner's thing answers exactly like a missing one."""

from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.core.db import get_sessionmaker
from service.core.orm import Dataset, Job, Model, new_id
from service.schemas import examples
from tests.api.conftest import OWNER, assert_envelope, concrete_job, upload_file
from workers.tasks import run_job


@dataclass
class Things:
    """What alice (`client`) owns: a dataset, a trained job with its model, and a queued job."""

    dataset_id: str
    trained_job_id: str
    model_id: str
    queued_job_id: str


def _submit(client: TestClient, body: dict[str, Any]) -> str:
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


@pytest.fixture
def alices(client: TestClient) -> Things:
    upload = upload_file(client, "concrete_data.csv", name="concrete")
    assert upload.status_code == 201, upload.text
    dataset_id = upload.json()["id"]
    body = concrete_job("concrete")
    body["training"]["epochs"] = 1
    trained_job_id = _submit(client, body)
    run_job(trained_job_id)  # the training task in-process, as a worker runs it
    trained = client.get(f"/v1/jobs/{trained_job_id}").json()
    assert trained["status"] == "succeeded", trained
    queued_job_id = _submit(client, body)
    return Things(dataset_id, trained_job_id, trained["model_id"], queued_job_id)


def _requests(things: Things) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every request on one of alice's things: (method, path, JSON body)."""
    dataset, job, model = things.dataset_id, things.queued_job_id, things.model_id
    return [
        ("GET", f"/v1/datasets/{dataset}", None),
        ("GET", f"/v1/datasets/{dataset}/preview", None),
        ("DELETE", f"/v1/datasets/{dataset}", None),
        ("GET", f"/v1/jobs/{job}", None),
        ("GET", f"/v1/jobs/{things.trained_job_id}/history", None),
        ("POST", f"/v1/jobs/{job}/cancel", None),
        ("GET", f"/v1/models/{model}", None),
        ("GET", f"/v1/models/{things.trained_job_id}", None),  # a job id where a model id goes
        ("POST", f"/v1/models/{model}/predict", examples.CONCRETE_PREDICT),
        ("GET", f"/v1/models/{model}/download", None),
        ("POST", "/v1/jobs", concrete_job(dataset)),
        ("POST", "/v1/specs/validate", concrete_job(dataset)),
    ]


def test_request_other_owners_thing_returns_the_404_of_a_missing_one(
    client: TestClient, other_client: TestClient, alices: Things
) -> None:
    missing = Things(new_id(), new_id(), new_id(), new_id())
    for (method, path, body), (_, missing_path, missing_body) in zip(
        _requests(alices), _requests(missing), strict=True
    ):
        response = other_client.request(method, path, json=body)
        expected = other_client.request(method, missing_path, json=missing_body)

        assert_envelope(response, 404)
        assert response.json() == _with_ids_of(expected.json(), missing, alices), f"{method} {path}"

    # Nothing changed for alice: her dataset and jobs are there, the queued job still queued.
    assert client.get(f"/v1/datasets/{alices.dataset_id}").status_code == 200
    assert client.get(f"/v1/jobs/{alices.queued_job_id}").json()["status"] == "queued"
    assert client.get("/v1/jobs").json()["total"] == 2


def _with_ids_of(body: dict[str, str], old: Things, new: Things) -> dict[str, str]:
    """The error body with each of `old`'s ids replaced by the matching one of `new`."""
    replaced = {}
    for key, value in body.items():
        for field, old_id in vars(old).items():
            value = value.replace(old_id, getattr(new, field))
        replaced[key] = value
    return replaced


def test_list_as_other_owner_shows_none_of_them(other_client: TestClient, alices: Things) -> None:
    for resource in ("datasets", "jobs", "models"):
        response = other_client.get(f"/v1/{resource}")

        assert response.status_code == 200, response.text
        assert response.json()["items"] == [] and response.json()["total"] == 0, resource


def test_predict_and_download_own_model_succeed(client: TestClient, alices: Things) -> None:
    predict = client.post(f"/v1/models/{alices.model_id}/predict", json=examples.CONCRETE_PREDICT)
    download = client.get(f"/v1/models/{alices.model_id}/download")

    assert predict.status_code == 200, predict.text
    assert download.status_code == 200 and len(download.content) > 1000
    assert client.get("/v1/models").json()["total"] == 1


def test_request_with_admin_key_reaches_every_owners_things(
    admin_client: TestClient, alices: Things
) -> None:
    reads = [
        f"/v1/datasets/{alices.dataset_id}",
        f"/v1/datasets/{alices.dataset_id}/preview",
        f"/v1/jobs/{alices.queued_job_id}",
        f"/v1/jobs/{alices.trained_job_id}/history",
        f"/v1/models/{alices.model_id}",
        f"/v1/models/{alices.model_id}/download",
    ]
    for path in reads:
        response = admin_client.get(path)
        assert response.status_code == 200, f"{path}: {response.text}"
    predict = admin_client.post(
        f"/v1/models/{alices.model_id}/predict", json=examples.CONCRETE_PREDICT
    )
    assert predict.status_code == 200, predict.text
    for resource, count in (("datasets", 1), ("jobs", 2), ("models", 1)):
        assert admin_client.get(f"/v1/{resource}").json()["total"] == count, resource
    cancel = admin_client.post(f"/v1/jobs/{alices.queued_job_id}/cancel")
    assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"


def test_get_model_by_job_id_as_admin_names_its_model(
    admin_client: TestClient, alices: Things
) -> None:
    response = admin_client.get(f"/v1/models/{alices.trained_job_id}")

    body = assert_envelope(response, 404, field="model_id")
    assert alices.model_id in body["detail"]


def test_submit_by_dataset_name_resolves_within_the_owner(
    client: TestClient, other_client: TestClient
) -> None:
    alices_dataset = upload_file(client, "concrete_data.csv", name="concrete").json()
    bobs_dataset = upload_file(other_client, "concrete_data.csv", name="concrete").json()

    alices_job = client.post("/v1/jobs", json=concrete_job("concrete")).json()
    bobs_job = other_client.post("/v1/jobs", json=concrete_job("concrete")).json()

    assert alices_job["dataset_id"] == alices_dataset["id"]
    assert bobs_job["dataset_id"] == bobs_dataset["id"]
    assert client.get("/v1/datasets/concrete").json()["id"] == alices_dataset["id"]
    assert other_client.get("/v1/datasets/concrete").json()["id"] == bobs_dataset["id"]


def test_submit_with_other_owners_dataset_name_returns_404(
    client: TestClient, other_client: TestClient
) -> None:
    upload_file(client, "concrete_data.csv", name="concrete")

    response = other_client.post("/v1/jobs", json=concrete_job("concrete"))

    body = assert_envelope(response, 404, field="dataset_id")
    assert body["detail"] == "dataset 'concrete' does not exist"


def test_submit_with_same_idempotency_key_by_two_owners_creates_two_jobs(
    client: TestClient, other_client: TestClient
) -> None:
    for each in (client, other_client):
        assert upload_file(each, "concrete_data.csv", name="concrete").status_code == 201
    headers = {"Idempotency-Key": "same-key"}

    alices = client.post("/v1/jobs", json=concrete_job("concrete"), headers=headers)
    bobs = other_client.post("/v1/jobs", json=concrete_job("concrete"), headers=headers)

    assert alices.status_code == bobs.status_code == 202, bobs.text
    assert alices.json()["id"] != bobs.json()["id"]
    assert other_client.get(f"/v1/jobs/{alices.json()['id']}").status_code == 404


def test_create_as_owner_records_the_keys_owner(alices: Things) -> None:
    """The dataset, both jobs and the model the worker saved all belong to alice."""
    with get_sessionmaker()() as session:
        owners = {
            session.scalar(select(Dataset.owner)),
            *session.scalars(select(Job.owner)),
            session.scalar(select(Model.owner)),
        }

    assert owners == {OWNER}
