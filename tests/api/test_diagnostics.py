"""/v1/jobs/{id}/diagnostics, /plots/{kind}.{png|svg} and /page over HTTP.

Jobs train for real, in this process, as a worker runs them (`run_job`).
"""

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.schemas import examples
from tests.api.conftest import Upload, assert_envelope, concrete_job
from workers.tasks import run_job

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _train(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    run_job(response.json()["id"])
    job = dict(client.get(f"/v1/jobs/{response.json()['id']}").json())
    assert job["status"] == "succeeded", job
    return job


@pytest.fixture
def regression(client: TestClient, upload: Upload) -> dict[str, Any]:
    upload("concrete_data.csv", name="concrete")
    body = concrete_job("concrete")
    body["training"].update(epochs=3, test_split=0.2)
    return _train(client, body)


@pytest.fixture
def queued(client: TestClient, upload: Upload) -> dict[str, Any]:
    upload("concrete_data.csv", name="concrete")
    response = client.post("/v1/jobs", json=concrete_job("concrete"))
    assert response.status_code == 202, response.text
    return dict(response.json())


def test_get_diagnostics_of_trained_job_has_every_epoch_and_layer(
    client: TestClient, regression: dict[str, Any]
) -> None:
    response = client.get(f"/v1/jobs/{regression['id']}/diagnostics")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["enabled"] is True and set(body["rules"]) >= {"vanishing", "exploding"}
    assert [row["epoch"] for row in body["epochs"]] == [1, 2, 3]
    layers = body["epochs"][0]["layers"]
    assert [layer["name"] for layer in layers] == ["dense_1", "dense_2", "output"]
    assert all(layer["gradient_norm"] > 0 for layer in layers)
    assert [layer["dead_fraction"] is not None for layer in layers] == [True, True, False]
    ratio = body["epochs"][0]["first_to_output_ratio"]
    assert ratio == pytest.approx(layers[0]["gradient_norm"] / layers[-1]["gradient_norm"])


def test_get_plots_of_trained_regression_are_png_and_svg(
    client: TestClient, regression: dict[str, Any]
) -> None:
    base = f"/v1/jobs/{regression['id']}/plots"
    for kind in ("learning-curves", "gradient-norms", "predicted-vs-actual"):
        png = client.get(f"{base}/{kind}.png")
        svg = client.get(f"{base}/{kind}.svg")

        assert png.status_code == 200, (kind, png.text)
        assert png.headers["content-type"] == "image/png"
        assert png.content.startswith(PNG_MAGIC)
        assert svg.status_code == 200, (kind, svg.text)
        assert svg.headers["content-type"].startswith("image/svg+xml")
        assert b"<svg" in svg.content[:1000]
    assert set(regression["links"]["plots"]) == {
        f"{kind}.{fmt}"
        for kind in ("learning-curves", "gradient-norms", "predicted-vs-actual")
        for fmt in ("png", "svg")
    }
    assert regression["links"]["page"] == f"/v1/jobs/{regression['id']}/page"


def test_get_confusion_matrix_of_regression_returns_404_naming_the_other_plot(
    client: TestClient, regression: dict[str, Any]
) -> None:
    response = client.get(f"/v1/jobs/{regression['id']}/plots/confusion-matrix.png")

    body = assert_envelope(response, 404, field="kind")
    assert "classification" in body["detail"] and "predicted-vs-actual" in body["detail"]


def test_get_confusion_matrix_of_classifier_counts_the_test_rows(
    client: TestClient, upload: Upload
) -> None:
    upload("penguins.csv", name="penguins")
    body = copy.deepcopy(examples.PENGUINS_CLASSIFIER)
    body["training"]["epochs"] = 2
    job = _train(client, body)

    png = client.get(f"/v1/jobs/{job['id']}/plots/confusion-matrix.png")
    wrong_kind = client.get(f"/v1/jobs/{job['id']}/plots/predicted-vs-actual.svg")

    assert png.status_code == 200, png.text
    assert png.content.startswith(PNG_MAGIC)
    assert_envelope(wrong_kind, 404, field="kind")
    assert "confusion-matrix.svg" in job["links"]["plots"]


def test_get_plots_of_queued_job_returns_409_until_data_is_there(
    client: TestClient, queued: dict[str, Any]
) -> None:
    base = f"/v1/jobs/{queued['id']}/plots"
    for kind in ("learning-curves", "gradient-norms", "predicted-vs-actual"):
        body = assert_envelope(client.get(f"{base}/{kind}.png"), 409, field="job_id")
        assert "queued" in body["detail"]
    diagnostics = client.get(f"/v1/jobs/{queued['id']}/diagnostics").json()
    assert diagnostics["enabled"] is True and diagnostics["epochs"] == []


def test_get_gradient_norms_of_job_without_diagnostics_returns_404(
    client: TestClient, upload: Upload
) -> None:
    upload("concrete_data.csv", name="concrete")
    body = concrete_job("concrete")
    body["training"].update(epochs=2, diagnostics=False)
    job = _train(client, body)

    response = client.get(f"/v1/jobs/{job['id']}/plots/gradient-norms.png")

    assert "diagnostics false" in assert_envelope(response, 404, field="kind")["detail"]
    assert client.get(f"/v1/jobs/{job['id']}/diagnostics").json()["epochs"] == []
    assert client.get(f"/v1/jobs/{job['id']}/plots/learning-curves.png").status_code == 200


@pytest.mark.parametrize("plot", ["loss-curves.png", "learning-curves.gif"])
def test_get_unknown_plot_kind_or_format_returns_422(
    client: TestClient, queued: dict[str, Any], plot: str
) -> None:
    response = client.get(f"/v1/jobs/{queued['id']}/plots/{plot}")

    assert_envelope(response, 422)


def test_diagnostics_plots_and_page_of_another_owner_are_404(
    other_client: TestClient, queued: dict[str, Any]
) -> None:
    base = f"/v1/jobs/{queued['id']}"
    for path in ("diagnostics", "plots/learning-curves.png", "page"):
        assert_envelope(other_client.get(f"{base}/{path}"), 404, field="job_id")


def test_get_page_without_a_key_serves_the_page_that_asks_for_one(
    client: TestClient, queued: dict[str, Any]
) -> None:
    keyless = TestClient(client.app)
    page = keyless.get(f"/v1/jobs/{queued['id']}/page")
    keyed = client.get(f"/v1/jobs/{queued['id']}/page")

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f'const jobId = "{queued["id"]}";' in page.text
    assert "sessionStorage" in page.text and "/events" in page.text
    assert keyed.status_code == 200 and keyed.text == page.text
    assert keyless.get(f"/v1/jobs/{queued['id']}/diagnostics").status_code == 401


def test_get_page_escapes_the_job_id_in_its_script(client: TestClient) -> None:
    keyless = TestClient(client.app)
    response = keyless.get("/v1/jobs/%3Cscript%3Ealert(1)%3C!--/page")

    assert response.status_code == 200
    assert "<script>alert" not in response.text and "<!--" not in response.text
    assert '"\\u003cscript>alert(1)\\u003c!--"' in response.text
