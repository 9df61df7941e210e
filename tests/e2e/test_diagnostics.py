"""Diagnostics, plots, the job page, forward propagation and weights through `dendrite serve`."""

import pytest

from tests.e2e.conftest import Service
from tests.e2e.flows import concrete_job, concrete_rows, submit, upload, wait_for

pytestmark = pytest.mark.e2e


def test_trained_job_shows_diagnostics_plots_page_forward_and_weights(embedded: Service) -> None:
    client = embedded.client
    dataset = upload(client, "concrete_data.csv", "concrete-diagnostics")
    job = wait_for(client, submit(client, concrete_job(dataset["id"], epochs=3))["id"])
    assert job["status"] == "succeeded", embedded.log_text()

    diagnostics = client.get(f"/v1/jobs/{job['id']}/diagnostics")
    assert diagnostics.status_code == 200, diagnostics.text
    epochs = diagnostics.json()["epochs"]
    assert [row["epoch"] for row in epochs] == [1, 2, 3]
    assert all(layer["gradient_norm"] > 0 for layer in epochs[-1]["layers"])

    png = client.get(job["links"]["plots"]["learning-curves.png"])
    assert png.status_code == 200, png.text
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    svg = client.get(f"/v1/jobs/{job['id']}/plots/gradient-norms.svg")
    assert svg.status_code == 200, svg.text
    assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content

    page = client.get(job["links"]["page"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert job["id"] in page.text

    _, records = concrete_rows(1)
    model_id = job["model_id"]
    forward = client.post(f"/v1/models/{model_id}/forward", json={"instance": records[0]})
    assert forward.status_code == 200, forward.text
    layers = forward.json()["layers"]
    assert layers[-1]["name"] == "output" and layers[-1]["output"]["shape"] == [1]
    predicted = client.post(f"/v1/models/{model_id}/predict", json={"instances": records})
    assert layers[-1]["output"]["values"][0] == pytest.approx(
        predicted.json()["predictions"][0]["Strength"], rel=1e-5
    )

    weights = client.get(f"/v1/models/{model_id}/weights")
    assert weights.status_code == 200, weights.text
    by_name = {layer["name"]: layer for layer in weights.json()["layers"]}
    assert [w["stats"]["shape"] for w in by_name["dense_1"]["weights"]] == [[8, 50], [50]]
