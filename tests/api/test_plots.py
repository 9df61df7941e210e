"""The plots people read, over HTTP: `?scale=`, and sample PNGs of the course's networks saved
under tests/output/plots/ (a CI artifact) to look at: the concrete regression's learning curves,
the sigmoid and ReLU nets' gradient norms, and a dead ReLU net's, every norm 0.

Jobs train for real, in this process, as a worker runs them (`run_job`).
"""

import copy
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from service.schemas import examples
from tests.api.conftest import Upload, assert_envelope, concrete_job
from workers.tasks import run_job

OUTPUT = Path(__file__).resolve().parents[1] / "output" / "plots"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _train(client: TestClient, body: dict[str, Any]) -> str:
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    run_job(response.json()["id"])
    job = client.get(f"/v1/jobs/{response.json()['id']}").json()
    assert job["status"] == "succeeded", job
    return str(job["id"])


def _six(activation: str, optimizer: dict[str, Any], epochs: int) -> dict[str, Any]:
    body = concrete_job("concrete")
    body["network"]["layers"] = [{"type": "dense", "units": 10, "activation": activation}] * 6
    body["training"].update(epochs=epochs, optimizer=optimizer)
    return body


def _save(client: TestClient, path: str, name: str) -> bytes:
    response = client.get(path)
    assert response.status_code == 200, response.text
    assert response.content.startswith(PNG_MAGIC)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / name).write_bytes(response.content)
    return response.content


def _svg(client: TestClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return response.text


def test_plots_of_the_course_networks_are_saved_for_review(
    client: TestClient, upload: Upload
) -> None:
    upload("concrete_data.csv", name="concrete")
    concrete = concrete_job("concrete")
    concrete["training"]["epochs"] = 12
    adam = {"name": "adam", "learning_rate": 0.001}
    jobs = {
        "concrete": _train(client, concrete),
        "sigmoid": _train(client, _six("sigmoid", adam, 12)),
        "relu": _train(client, _six("relu", adam, 12)),
        "dead-relu": _train(client, _six("relu", {"name": "sgd", "learning_rate": 0.01}, 5)),
    }

    base = {name: f"/v1/jobs/{job_id}/plots" for name, job_id in jobs.items()}
    linear = _save(client, f"{base['concrete']}/learning-curves.png", "learning-curves.png")
    log = _save(
        client, f"{base['concrete']}/learning-curves.png?scale=log", "learning-curves-log.png"
    )
    for name in ("sigmoid", "relu", "dead-relu"):
        _save(client, f"{base[name]}/gradient-norms.png", f"gradient-norms-{name}.png")
    _save(
        client,
        f"{base['sigmoid']}/gradient-norms.png?scale=linear",
        "gradient-norms-sigmoid-linear.png",
    )
    _save(client, f"{base['dead-relu']}/learning-curves.png", "learning-curves-dead-relu.png")

    assert linear != log
    # SVG keeps each text as a comment beside its glyphs: what the reader sees, checked here.
    dead = _svg(client, f"{base['dead-relu']}/gradient-norms.svg")
    assert "0 shown at floor" in dead and "flagged: dead" in dead
    assert all(f"dense_{i}" in dead for i in range(1, 7))
    sigmoid = _svg(client, f"{base['sigmoid']}/gradient-norms.svg")
    assert "flagged: vanishing" in sigmoid and "0 shown at floor" not in sigmoid
    curves = _svg(client, f"{base['concrete']}/learning-curves.svg?scale=log")
    assert "Learning curves (log scale)" in curves and "epoch" in curves


def test_get_plot_with_a_scale_it_does_not_take_returns_422(
    client: TestClient, upload: Upload
) -> None:
    upload("penguins.csv", name="penguins")
    body = copy.deepcopy(examples.PENGUINS_CLASSIFIER)
    body["training"]["epochs"] = 1
    job_id = _train(client, body)

    response = client.get(f"/v1/jobs/{job_id}/plots/confusion-matrix.png?scale=log")
    unknown = client.get(f"/v1/jobs/{job_id}/plots/learning-curves.png?scale=sqrt")

    detail = assert_envelope(response, 422, field="scale")["detail"]
    assert "learning-curves and gradient-norms" in detail
    assert_envelope(unknown, 422)
    assert client.get(f"/v1/jobs/{job_id}/plots/confusion-matrix.png").status_code == 200


def test_openapi_documents_the_plot_scale(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/jobs/{job_id}/plots/{kind}.{fmt}"][
        "get"
    ]

    [scale] = [p for p in operation["parameters"] if p["name"] == "scale"]
    assert scale["in"] == "query" and "0 shown at floor" in scale["description"]
    assert "?scale=log" in operation["description"]
