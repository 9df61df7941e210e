"""Plots of jobs whose column names, target and class labels hold `$`: matplotlib read text
between two `$` as TeX math and `$_$` raised, a 500. Jobs train for real, in this process, as a
worker runs them (`run_job`)."""

import random
from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import upload_bytes
from workers.tasks import run_job

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LABELS = ["$x$", "$", "$_$"]


def _csv(target: str, labels: list[str] | None) -> bytes:
    draws = random.Random(7)
    lines = [f"$a$,b $,$\\frac$,{target}"]
    for index in range(120):
        a, b, c = (round(draws.uniform(0, 1), 3) for _ in range(3))
        label = labels[index % len(labels)] if labels else str(round(a + b - c, 3))
        lines.append(f"{a},{b},{c},{label}")
    return ("\n".join(lines) + "\n").encode()


def _train(client: TestClient, content: bytes, task: str, target: str) -> dict[str, Any]:
    dataset = upload_bytes(client, content, "dollars.csv")
    assert dataset.status_code == 201, dataset.text
    body = {
        "dataset_id": dataset.json()["id"],
        "task": task,
        "target": target,
        "network": {"layers": [{"type": "dense", "units": 4, "activation": "relu"}]},
        "training": {"epochs": 2, "validation_split": 0.25, "test_split": 0.25, "seed": 1},
    }
    submitted = client.post("/v1/jobs", json=body)
    assert submitted.status_code == 202, submitted.text
    run_job(submitted.json()["id"])
    job = dict(client.get(f"/v1/jobs/{submitted.json()['id']}").json())
    assert job["status"] == "succeeded", job
    return job


def _assert_pngs(client: TestClient, job: dict[str, Any], kinds: list[str]) -> None:
    for kind in kinds:
        response = client.get(f"/v1/jobs/{job['id']}/plots/{kind}.png")
        assert response.status_code == 200, (kind, response.text)
        assert response.content.startswith(PNG_MAGIC)


def test_plots_of_a_classifier_with_dollar_labels_and_columns_are_pngs(
    client: TestClient,
) -> None:
    job = _train(client, _csv("$_$", LABELS), "classification", "$_$")

    _assert_pngs(client, job, ["confusion-matrix", "learning-curves", "gradient-norms"])
    model = client.get(f"/v1/models/{job['model_id']}").json()
    assert sorted(model["outputs"]["labels"]) == sorted(LABELS)


def test_plots_of_a_regression_with_a_dollar_target_are_pngs(client: TestClient) -> None:
    job = _train(client, _csv("$y_$", None), "regression", "$y_$")

    _assert_pngs(client, job, ["predicted-vs-actual", "learning-curves", "gradient-norms"])
