"""Repeated jobs and sweeps over HTTP: validation, the tables, cancellation and owners."""

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.core.config import get_settings
from service.core.db import session_scope
from service.core.orm import Job, JobStatus, Model
from service.schemas import examples
from tests.api.conftest import Upload, assert_envelope


@pytest.fixture
def concrete(upload: Upload) -> dict[str, Any]:
    return dict(upload("concrete_data.csv", name="concrete"))


def repeated(count: int = 3, **training: Any) -> dict[str, Any]:
    body = copy.deepcopy(examples.CONCRETE_REPEATED)
    body["repeats"] = count
    body["training"].update(training)
    return body


def sweep_body(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(examples.CONCRETE_SWEEP)
    body.update(changes)
    return body


# --- repeats ---------------------------------------------------------------------------------


def test_repeated_job_shows_its_repeats_and_lists_once(
    client: TestClient, concrete: dict[str, Any]
) -> None:
    response = client.post("/v1/jobs", json=repeated(3))
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["repeats"] == {
        "requested": 3, "succeeded": 0, "failed": 0, "cancelled": 0, "test_metrics": {},
    }  # fmt: skip
    assert job["progress"] == {"epoch": 0, "epochs": 150}

    table = client.get(f"/v1/jobs/{job['id']}/repeats").json()
    assert [r["index"] for r in table["items"]] == [0, 1, 2]
    assert table["items"][0]["seed"] == 42 and len({r["seed"] for r in table["items"]}) == 3
    assert {r["status"] for r in table["items"]} == {"queued"}
    part = client.get(f"/v1/jobs/{table['items'][1]['part_job_id']}").json()
    assert part["parent_id"] == job["id"] and part["repeats"] is None

    listed = client.get("/v1/jobs").json()
    assert [j["id"] for j in listed["items"]] == [job["id"]]  # parts are not listed


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (repeated(3, test_split=0.0), "/training/test_split"),
        (repeated(0), "/repeats"),
        (repeated(101), "/repeats"),
    ],
)
def test_repeated_job_rejects_bad_repeats(
    client: TestClient, concrete: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    assert_envelope(client.post("/v1/jobs", json=body), 422, field)


def test_repeats_of_a_plain_job_or_another_owners_job_are_404(
    client: TestClient, other_client: TestClient, concrete: dict[str, Any]
) -> None:
    plain = client.post("/v1/jobs", json=repeated(1)).json()
    assert_envelope(client.get(f"/v1/jobs/{plain['id']}/repeats"), 404, "job_id")
    job = client.post("/v1/jobs", json=repeated(2)).json()
    assert_envelope(other_client.get(f"/v1/jobs/{job['id']}/repeats"), 404, "job_id")
    assert_envelope(other_client.post(f"/v1/jobs/{job['id']}/cancel"), 404, "job_id")


def test_cancel_repeated_job_cancels_its_parts(
    client: TestClient, concrete: dict[str, Any]
) -> None:
    job = client.post("/v1/jobs", json=repeated(3)).json()
    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    table = client.get(f"/v1/jobs/{job['id']}/repeats").json()
    assert {r["status"] for r in table["items"]} == {"cancelled"}
    assert table["summary"]["cancelled"] == 3
    assert_envelope(client.post(f"/v1/jobs/{job['id']}/cancel"), 409)


# --- sweeps ----------------------------------------------------------------------------------


def test_grid_sweep_queues_every_combination_as_a_job(
    client: TestClient, concrete: dict[str, Any]
) -> None:
    response = client.post("/v1/sweeps", json=sweep_body())
    assert response.status_code == 202, response.text
    sweep = response.json()
    assert response.headers["location"] == f"/v1/sweeps/{sweep['id']}"
    assert (sweep["status"], sweep["metric"], sweep["direction"]) == ("queued", "val_loss", "min")
    assert sweep["best"] is None
    params = sorted(
        (
            t["parameters"]["network.layers[*].units"],
            t["parameters"]["training.optimizer.learning_rate"],
        )
        for t in sweep["trials"]
    )
    assert params == [(10, 0.001), (10, 0.01), (50, 0.001), (50, 0.01)]
    trial = client.get(f"/v1/jobs/{sweep['trials'][0]['job_id']}").json()
    assert trial["sweep_id"] == sweep["id"]
    request = trial["request"]
    assert request["network"]["layers"][0]["units"] == trial_param(sweep, trial["id"], "units")
    assert request["training"]["seed"] == 42

    listed = client.get("/v1/sweeps").json()
    assert [s["id"] for s in listed["items"]] == [sweep["id"]] and listed["total"] == 1


def trial_param(sweep: dict[str, Any], job_id: str, name: str) -> Any:
    (trial,) = [t for t in sweep["trials"] if t["job_id"] == job_id]
    return trial["parameters"][f"network.layers[*].{name}"]


def test_sweep_varies_layer_count_with_whole_layer_lists(
    client: TestClient, concrete: dict[str, Any]
) -> None:
    dense = {"type": "dense", "units": 10, "activation": "relu"}
    body = sweep_body(parameters={"network.layers": [[dense], [dense, dense, dense]]})
    sweep = client.post("/v1/sweeps", json=body).json()
    depths = sorted(
        len(client.get(f"/v1/jobs/{t['job_id']}").json()["request"]["network"]["layers"])
        for t in sweep["trials"]
    )
    assert depths == [1, 3]


def test_random_sweep_draws_max_trials_within_ranges(
    client: TestClient, concrete: dict[str, Any]
) -> None:
    parameters = {
        "training.optimizer.learning_rate": {"min": 0.0001, "max": 0.1, "log": True},
        "training.batch_size": [16, 64],
    }
    body = sweep_body(search="random", parameters=parameters, max_trials=5, seed=3)
    sweep = client.post("/v1/sweeps", json=body).json()
    assert len(sweep["trials"]) == 5
    for trial in sweep["trials"]:
        assert 0.0001 <= trial["parameters"]["training.optimizer.learning_rate"] <= 0.1
        assert trial["parameters"]["training.batch_size"] in (16, 64)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"parameters": {"network.layers[*].colour": [1, 2]}},
         "/parameters/network.layers[*].colour"),
        ({"parameters": {"training..epochs": [1]}}, "/parameters/training..epochs"),
        ({"parameters": {"network.layers[*].units": [0, 10]}},
         "/parameters/network.layers[*].units"),
        ({"parameters": {"network.layers[*].activation": ["relu", "binary_step"]}},
         "/parameters/network.layers[*].activation"),
        ({"parameters": {"training.epochs": []}}, "/parameters/training.epochs"),
        ({"parameters": {"training.epochs": {"min": 1, "max": 5}}}, "/parameters/training.epochs"),
        ({"parameters": {"training.epochs": list(range(1, 30))}}, "/parameters"),
        ({"max_trials": 500}, "/max_trials"),
        ({"metric": "val_accuracy"}, "/metric"),
        ({"metric": "test_mae"}, "/metric"),
    ],
)  # fmt: skip
def test_sweep_rejects_bad_requests_naming_the_field(
    client: TestClient, concrete: dict[str, Any], changes: dict[str, Any], field: str
) -> None:
    body = sweep_body(**changes)
    body["base"]["training"]["test_split"] = 0.0  # so test_* metrics are not reported
    assert_envelope(client.post("/v1/sweeps", json=body), 422, field)
    assert client.get("/v1/jobs").json()["total"] == 0  # nothing was queued


def test_sweep_rejects_a_range_whose_min_is_not_below_max(
    client: TestClient, concrete: dict[str, Any]
) -> None:
    parameters = {"training.optimizer.learning_rate": {"min": 1, "max": 0.1}}
    body = sweep_body(search="random", parameters=parameters)
    response = client.post("/v1/sweeps", json=body)
    assert_envelope(response, 422)
    assert response.json()["field"].startswith("/parameters/training.optimizer.learning_rate")


def test_sweep_rejects_repeated_base_and_too_many_active_jobs(
    client: TestClient, concrete: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    body = sweep_body()
    body["base"]["repeats"] = 3
    assert_envelope(client.post("/v1/sweeps", json=body), 422, "/base/repeats")
    monkeypatch.setenv("DENDRITE_MAX_ACTIVE_JOBS_PER_OWNER", "3")
    get_settings.cache_clear()
    response = client.post("/v1/sweeps", json=sweep_body())
    assert_envelope(response, 429)
    assert response.headers["retry-after"]


def test_sweep_ranks_finished_trials_and_names_the_best_model(
    client: TestClient, concrete: dict[str, Any]
) -> None:
    sweep = client.post("/v1/sweeps", json=sweep_body()).json()
    losses = {}
    with session_scope() as session:  # as the workers would record them
        for number, job in enumerate(
            session.scalars(select(Job).where(Job.sweep_id == sweep["id"]))
        ):
            if number == 3:
                job.status = JobStatus.failed
                continue
            job.status, job.latest_metrics = JobStatus.succeeded, {"val_loss": 100.0 - number}
            losses[job.id] = 100.0 - number
            session.add(
                Model(id=f"m{number}", owner=job.owner, job_id=job.id, task="regression",
                      input_schema={}, outputs={}, parameters=1, size_bytes=1, storage_key="x")
            )  # fmt: skip

    read = client.get(f"/v1/sweeps/{sweep['id']}").json()
    assert read["status"] == "succeeded"
    ranked = [(t["rank"], t["value"]) for t in read["trials"]]
    assert ranked == [(1, 98.0), (2, 99.0), (3, 100.0), (None, None)]
    assert read["best"]["value"] == min(losses.values()) and read["best"]["model_id"] == "m2"
    assert read["trials"][-1]["status"] == "failed"


def test_cancel_sweep_cancels_its_jobs_and_other_owners_get_404(
    client: TestClient, other_client: TestClient, concrete: dict[str, Any]
) -> None:
    sweep = client.post("/v1/sweeps", json=sweep_body()).json()
    assert_envelope(other_client.get(f"/v1/sweeps/{sweep['id']}"), 404, "sweep_id")
    assert_envelope(other_client.post(f"/v1/sweeps/{sweep['id']}/cancel"), 404, "sweep_id")
    assert other_client.get("/v1/sweeps").json()["total"] == 0

    cancelled = client.post(f"/v1/sweeps/{sweep['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert {t["status"] for t in cancelled.json()["trials"]} == {"cancelled"}
    assert_envelope(client.post(f"/v1/sweeps/{sweep['id']}/cancel"), 409)
