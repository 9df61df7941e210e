"""/v1/registered-models over HTTP: names, versions with lineage, aliases that move (recorded), and
`name@alias` / `name/versions/n` wherever a model id is taken, on models trained in this process
as a worker trains them."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.schemas import examples
from tests.api.conftest import Upload, assert_envelope, concrete_job
from workers.tasks import run_job

ROW = examples.CONCRETE_PREDICT["instances"][0]


def _train(client: TestClient, seed: int) -> str:
    body = concrete_job("concrete")
    body["training"] |= {"epochs": 1, "seed": seed}
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    run_job(response.json()["id"])
    job = client.get(f"/v1/jobs/{response.json()['id']}").json()
    assert job["status"] == "succeeded", job
    return str(job["model_id"])


@pytest.fixture
def two_models(client: TestClient, upload: Upload) -> list[str]:
    upload("concrete_data.csv", name="concrete")
    return [_train(client, seed) for seed in (1, 2)]


def _predict(client: TestClient, model: str) -> float:
    response = client.post(f"/v1/models/{model}/predict", json={"instances": [ROW]})
    assert response.status_code == 200, response.text
    return float(response.json()["predictions"][0]["Strength"])


def _registered(client: TestClient, models: list[str]) -> None:
    assert client.post("/v1/registered-models", json={"name": "strength"}).status_code == 201
    for model_id in models:
        response = client.post(
            "/v1/registered-models/strength/versions", json={"model_id": model_id}
        )
        assert response.status_code == 201, response.text


def test_versions_are_numbered_and_carry_their_lineage(
    client: TestClient, two_models: list[str]
) -> None:
    _registered(client, two_models)

    versions = client.get("/v1/registered-models/strength/versions").json()

    assert [(v["version"], v["model_id"]) for v in versions] == [
        (1, two_models[0]),
        (2, two_models[1]),
    ]
    lineage = versions[1]["lineage"]
    assert lineage["seed"] == 2 and lineage["split"]["validation"] == 0.3
    assert lineage["dataset"]["name"] == "concrete" and len(lineage["dataset"]["sha256"]) == 64
    assert lineage["request"]["training"]["epochs"] == 1 and lineage["epochs"] == 1
    assert "val_loss" in lineage["final_metrics"]
    assert set(lineage["trained_with"]) == {"keras", "tensorflow", "device"}
    assert lineage["training_seconds"] > 0
    read = client.get("/v1/registered-models/strength").json()
    assert read["latest_version"] == 2 and read["aliases"] == {}


def test_moving_an_alias_changes_what_the_next_prediction_is_served(
    client: TestClient, two_models: list[str]
) -> None:
    _registered(client, two_models)
    first, second = (_predict(client, model_id) for model_id in two_models)
    assert first != second

    client.put("/v1/registered-models/strength/aliases/production", json={"version": 1})
    assert _predict(client, "strength@production") == first
    moved = client.put("/v1/registered-models/strength/aliases/production", json={"version": 2})
    assert moved.status_code == 200 and moved.json()["aliases"] == ["production"]
    assert _predict(client, "strength@production") == second  # at once, in this process
    assert _predict(client, "strength/versions/1") == first

    assert client.delete("/v1/registered-models/strength/aliases/production").status_code == 204
    gone = client.post("/v1/models/strength@production/predict", json={"instances": [ROW]})
    assert_envelope(gone, 404, "model_id")
    moves = client.get("/v1/registered-models/strength/alias-moves").json()
    assert [(m["from_version"], m["to_version"]) for m in moves] == [(None, 1), (1, 2), (2, None)]
    assert {m["moved_by"] for m in moves} == {"alice"}


def test_references_work_wherever_a_model_id_does(
    client: TestClient, two_models: list[str]
) -> None:
    _registered(client, two_models)
    client.put("/v1/registered-models/strength/aliases/champion", json={"version": 2})

    for reference in ("strength@champion", "strength/versions/2"):
        assert client.get(f"/v1/models/{reference}").json()["id"] == two_models[1]
        assert client.get(f"/v1/models/{reference}/download").status_code == 200
        assert client.get(f"/v1/models/{reference}/weights").json()["model_id"] == two_models[1]
        forward = client.post(f"/v1/models/{reference}/forward", json={"instance": ROW})
        assert forward.json()["model_id"] == two_models[1]
        exported = client.get(f"/v1/models/{reference}/export", params={"format": "onnx"})
        assert exported.status_code == 200, exported.text
        assert two_models[1] in exported.headers["content-disposition"]


def test_registry_errors_name_what_is_wrong(client: TestClient, two_models: list[str]) -> None:
    _registered(client, two_models)

    again = client.post("/v1/registered-models", json={"name": "strength"})
    assert_envelope(again, 409, "name")
    bad_name = client.post("/v1/registered-models", json={"name": "a@b"})
    assert bad_name.status_code == 422
    missing = client.put("/v1/registered-models/strength/aliases/production", json={"version": 9})
    assert "versions are 1 to 2" in assert_envelope(missing, 404, "version")["detail"]
    unknown = client.post("/v1/registered-models/nope/versions", json={"model_id": two_models[0]})
    assert_envelope(unknown, 404, "name")
    no_model = client.post("/v1/registered-models/strength/versions", json={"model_id": "nope"})
    assert_envelope(no_model, 404, "model_id")
    no_alias = client.post("/v1/models/strength@nope/predict", json={"instances": [ROW]})
    assert_envelope(no_alias, 404, "model_id")


def test_another_owner_sees_no_names_and_cannot_register_my_models(
    client: TestClient, other_client: TestClient, two_models: list[str]
) -> None:
    _registered(client, two_models)
    client.put("/v1/registered-models/strength/aliases/production", json={"version": 1})

    assert other_client.get("/v1/registered-models").json()["total"] == 0
    assert_envelope(other_client.get("/v1/registered-models/strength"), 404, "name")
    theirs = other_client.post("/v1/models/strength@production/predict", json={"instances": [ROW]})
    assert_envelope(theirs, 404, "name")
    assert other_client.post("/v1/registered-models", json={"name": "strength"}).status_code == 201
    stolen = other_client.post(
        "/v1/registered-models/strength/versions", json={"model_id": two_models[0]}
    )
    assert_envelope(stolen, 404, "model_id")


def test_a_dataset_behind_a_version_is_deleted_only_with_the_cascade(
    client: TestClient, two_models: list[str]
) -> None:
    _registered(client, two_models)
    client.put("/v1/registered-models/strength/aliases/production", json={"version": 1})
    dataset_id = client.get(f"/v1/models/{two_models[0]}").json()["job_id"]
    dataset_id = client.get(f"/v1/jobs/{dataset_id}").json()["dataset_id"]

    refused = client.delete(f"/v1/datasets/{dataset_id}")
    assert refused.status_code == 409, refused.text
    body: dict[str, Any] = refused.json()
    assert "2 model versions" in body["detail"]
    assert body["dependents"]["model_versions"]["ids"] == [
        "strength/versions/1",
        "strength/versions/2",
    ]
    assert client.delete(f"/v1/datasets/{dataset_id}?cascade=true").status_code == 204
    read = client.get("/v1/registered-models/strength").json()
    assert read["latest_version"] is None and read["aliases"] == {}


def test_a_job_registers_its_model_when_it_succeeds(client: TestClient, upload: Upload) -> None:
    upload("concrete_data.csv", name="concrete")
    models = []
    for seed in (1, 2):
        body = concrete_job("concrete")
        body["training"] |= {"epochs": 1, "seed": seed}
        body["register_as"] = {"name": "strength", "alias": "production"}
        job_id = client.post("/v1/jobs", json=body).json()["id"]
        run_job(job_id)
        models.append(client.get(f"/v1/jobs/{job_id}").json()["model_id"])

    versions = client.get("/v1/registered-models/strength/versions").json()
    assert [v["model_id"] for v in versions] == models
    assert client.get("/v1/registered-models/strength").json()["aliases"] == {"production": 2}
    assert client.get("/v1/models/strength@production").json()["id"] == models[1]
    moves = client.get("/v1/registered-models/strength/alias-moves").json()
    assert [(m["from_version"], m["to_version"]) for m in moves] == [(None, 1), (1, 2)]


def test_register_is_for_single_jobs(client: TestClient) -> None:
    body = concrete_job("concrete")
    body |= {"repeats": 3, "register_as": {"name": "strength"}}
    body["training"]["test_split"] = 0.2
    assert client.post("/v1/jobs", json=body).status_code == 422
    body = concrete_job("concrete") | {"register_as": {"name": "bad/name"}}
    assert client.post("/v1/jobs", json=body).status_code == 422


def test_a_sweep_does_not_register_its_trials(client: TestClient) -> None:
    base = concrete_job("concrete") | {"register_as": {"name": "strength"}}
    body = {"base": base, "parameters": {"training.epochs": [1, 2]}}
    response = client.post("/v1/sweeps", json=body)
    assert response.status_code == 422 and "register_as" in response.text
