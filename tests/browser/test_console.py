"""The console in Chromium, as a person uses it: sign in, upload the concrete file, submit the
course network and watch it train live, predict, compare two jobs, move an alias, read a sweep;
an admin creates and revokes a key; one owner cannot reach another's things."""

import json
import time
from typing import Any

import httpx2
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from tests.browser.conftest import (
    Console,
    console_errors,
    foreign,
    requested_urls,
    shoot,
    sign_in,
    wait,
)
from tests.conftest import DATA

pytestmark = pytest.mark.browser

EPOCHS = 40  # long enough to watch a few epochs arrive, short enough for CI


def _api(server: Console, key: str) -> httpx2.Client:
    return httpx2.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )


def _wait_job(api: httpx2.Client, job_id: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = api.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not end in {timeout} s")


def _rows(driver: WebDriver, table: str) -> int:
    return len(driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr"))


def _text(driver: WebDriver, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def _submit(driver: WebDriver, base: str, changes: dict[str, Any], shot: str | None) -> str:
    """Submit the prefilled concrete network from the form, with `changes` to its JSON."""
    driver.get(f"{base}/ui/jobs/new")
    textarea = driver.find_element(By.ID, "body")
    body = json.loads(textarea.get_attribute("value") or "{}")
    assert body["network"]["layers"] == [
        {"type": "dense", "units": 50, "activation": "relu"},
        {"type": "dense", "units": 50, "activation": "relu"},
    ]
    assert body["training"]["optimizer"]["name"] == "adam" and body["training"]["epochs"] == 100
    assert Select(driver.find_element(By.ID, "dataset")).first_selected_option.text.startswith(
        "concrete"
    )
    if shot:
        shoot(driver, shot)
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node = body
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    driver.execute_script("arguments[0].value = arguments[1]", textarea, json.dumps(body))
    driver.find_element(By.CSS_SELECTOR, "#submit-job button").click()
    wait(driver).until(lambda d: "/ui/jobs/" in d.current_url and "/new" not in d.current_url)
    return str(driver.current_url.rsplit("/", 1)[1])


def test_console_flow_trains_predicts_compares_and_moves_an_alias(
    console_server: Console, browser: WebDriver, screenshots: Any
) -> None:
    base = console_server.base_url
    key = console_server.new_key("alice")
    browser.get(f"{base}/ui/jobs")
    assert "/ui/sign-in" in browser.current_url
    shoot(browser, "00-sign-in")
    sign_in(browser, base, key)
    session = browser.get_cookie("dendrite_console")
    assert session is not None and session["httpOnly"] and session["sameSite"] == "Strict"
    assert key not in browser.page_source and key not in session["value"]
    assert "dendrite_console" not in browser.execute_script("return document.cookie")

    # Upload the concrete file.
    browser.get(f"{base}/ui/datasets")
    browser.find_element(By.ID, "file").send_keys(str(DATA / "concrete_data.csv"))
    browser.find_element(By.ID, "name").send_keys("concrete")
    browser.find_element(By.CSS_SELECTOR, "#upload button").click()
    wait(browser).until(lambda d: "/ui/datasets/" in d.current_url)
    schema = browser.find_element(By.ID, "schema").text
    assert "Strength" in schema and "Cement" in schema
    assert _rows(browser, "preview") == 20
    shoot(browser, "02-dataset")
    browser.get(f"{base}/ui/datasets")
    assert "concrete" in browser.find_element(By.ID, "datasets").text
    shoot(browser, "01-datasets")

    # Submit the course network and watch it train.
    first = _submit(
        browser,
        base,
        {
            "training.epochs": EPOCHS,
            "training.batch_size": 8,
            "training.test_split": 0.2,
            "register_as": {"name": "concrete-strength", "alias": "production"},
        },
        shot="03-job-new",
    )
    browser.execute_script("window.sameDocument = true")  # gone if the page reloads
    wait(browser, 180).until(lambda d: _rows(d, "metrics") >= 1 and _text(d, "status") == "running")
    seen = _rows(browser, "metrics")
    wait(browser, 60).until(lambda d: _rows(d, "metrics") > seen)
    assert browser.execute_script("return window.sameDocument === true"), "grew by reloading"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#curves path.series")) >= 2
    shoot(browser, "04-job-running")
    wait(browser, 240).until(lambda d: _text(d, "status") == "succeeded")
    wait(browser).until(lambda d: d.find_elements(By.ID, "predict"))
    assert _rows(browser, "metrics") == EPOCHS
    assert "loss" in browser.find_element(By.ID, "test-metrics").text
    model_id = browser.find_element(By.CSS_SELECTOR, "#model-id code").text
    assert model_id
    curves = browser.find_elements(By.CSS_SELECTOR, "#curves figure")
    assert len(curves) == 2  # loss and mae, each training and validation
    for figure in curves:
        assert len(figure.find_elements(By.CSS_SELECTOR, "path.series")) == 2
        assert "epoch" in figure.text
    # Each legend sits right of its plot: no curve runs under it.
    overlaps = browser.execute_script(
        "return [...document.querySelectorAll('#curves svg')].map(svg => {"
        "  const legend = svg.querySelector('g.legend').getBoundingClientRect();"
        "  const right = Math.max(...[...svg.querySelectorAll('path.series')]"
        "    .map(p => p.getBoundingClientRect().right));"
        "  return legend.left - right; })"
    )
    assert all(gap > 0 for gap in overlaps), overlaps
    shoot(browser, "05-job-succeeded")
    browser.find_element(By.ID, "log-scale").click()
    wait(browser).until(lambda d: "log scale" in d.find_element(By.ID, "curves").text)
    shoot(browser, "06-job-log-scale")

    # Predict from the form (prefilled with two rows of the dataset, without the target).
    browser.find_element(By.CSS_SELECTOR, "#predict button").click()
    wait(browser).until(lambda d: d.find_elements(By.ID, "predictions"))
    predictions = json.loads(_text(browser, "predictions"))
    assert len(predictions) == 2 and all(isinstance(p["Strength"], float) for p in predictions)
    shoot(browser, "07-job-predicted")
    download = browser.execute_async_script(
        "const done = arguments[0];"
        "fetch(document.getElementById('download').href)"
        ".then(r => r.arrayBuffer().then(b => done([r.status, b.byteLength])))"
    )
    assert download[0] == 200 and download[1] > 1000

    # A second job with another learning rate: a second version of the registered model.
    second = _submit(
        browser,
        base,
        {
            "training.epochs": 10,
            "training.optimizer.learning_rate": 0.01,
            "register_as": {"name": "concrete-strength", "alias": "production"},
        },
        shot=None,
    )
    wait(browser, 240).until(lambda d: _text(d, "status") == "succeeded")

    # The jobs list: both, sortable by a metric.
    browser.get(f"{base}/ui/jobs?sort=val_loss&order=asc")
    assert _rows(browser, "jobs") == 2
    shoot(browser, "08-jobs")

    # Compare the two (the picker first, with none chosen).
    browser.get(f"{base}/ui/compare")
    assert _rows(browser, "jobs") == 2
    shoot(browser, "08-compare-pick")
    browser.get(f"{base}/ui/jobs?sort=val_loss&order=asc")
    for job_id in (first, second):
        browser.find_element(By.CSS_SELECTOR, f"input[value='{job_id}']").click()
    browser.find_element(By.ID, "compare").click()
    wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#curves path.series"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#curves path.series")) == 2
    differing = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#parameters tr.differs")]
    assert any("training.optimizer.learning_rate" in row for row in differing), differing
    assert any("training.epochs" in row for row in differing), differing
    assert not any("network" in row for row in differing), differing
    assert _rows(browser, "results") == 2
    shoot(browser, "09-compare")

    # The registered model: version 2 holds `production`; move it back to version 1.
    browser.get(f"{base}/ui/models")
    assert "production → v2" in browser.find_element(By.ID, "models").text
    shoot(browser, "10-models")
    browser.get(f"{base}/ui/models/concrete-strength")
    assert _rows(browser, "versions") == 2
    alias = browser.find_element(By.ID, "alias")
    alias.clear()
    alias.send_keys("production")
    Select(browser.find_element(By.ID, "version")).select_by_value("1")
    browser.find_element(By.CSS_SELECTOR, "#move-alias button").click()
    wait(browser).until(lambda d: "production → version 1" in d.find_element(By.ID, "aliases").text)
    assert _rows(browser, "moves") == 3  # new at v1, moved to v2, moved back to v1
    shoot(browser, "11-model")
    with _api(console_server, key) as api:
        served = api.get("/v1/models/concrete-strength@production").json()
        assert served["job_id"] == first

    # A sweep (started over the API): its ranked trials and parallel coordinates.
    with _api(console_server, key) as api:
        created = api.post(
            "/v1/sweeps",
            json={
                "base": {
                    "dataset_id": "concrete",
                    "task": "regression",
                    "target": "Strength",
                    "network": {"layers": [{"type": "dense", "units": 8, "activation": "relu"}]},
                    "training": {"epochs": 3, "validation_split": 0.2, "seed": 1},
                },
                "search": "grid",
                "parameters": {
                    "network.layers[*].units": [4, 16],
                    "training.optimizer.learning_rate": [0.001, 0.05],
                },
            },
        )
        assert created.status_code == 202, created.text
        sweep_id = created.json()["id"]
        for trial in created.json()["trials"]:
            _wait_job(api, trial["job_id"])
    browser.get(f"{base}/ui/sweeps")
    assert _rows(browser, "sweeps") == 1
    shoot(browser, "12-sweeps")
    browser.get(f"{base}/ui/sweeps/{sweep_id}")
    assert _rows(browser, "trials") == 4
    assert browser.find_element(By.CSS_SELECTOR, "#trials tbody tr td").text == "1"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#parallel path.trial")) == 4
    shoot(browser, "13-sweep")

    assert not console_errors(browser)
    assert not foreign(requested_urls(browser), base)

    # Signing out ends the session in this browser.
    browser.find_element(By.CSS_SELECTOR, ".sign-out button").click()
    wait(browser).until(lambda d: "/ui/sign-in" in d.current_url)
    browser.get(f"{base}/ui/jobs")
    assert "/ui/sign-in" in browser.current_url


def test_admin_creates_and_revokes_a_key(
    console_server: Console, browser: WebDriver, screenshots: Any
) -> None:
    base = console_server.base_url
    sign_in(browser, base, console_server.new_key("root", admin=True))
    browser.get(f"{base}/ui/keys")
    browser.find_element(By.ID, "owner").send_keys("carol")
    browser.find_element(By.CSS_SELECTOR, "#create-key button").click()
    wait(browser).until(lambda d: d.find_elements(By.ID, "new-key"))
    new_key = _text(browser, "new-key")
    assert new_key.startswith("dk_")
    shoot(browser, "14-key-created")
    with _api(console_server, new_key) as api:
        assert api.get("/v1/jobs").status_code == 200

        browser.get(f"{base}/ui/keys")
        assert new_key not in browser.page_source  # shown once
        row = browser.find_element(By.XPATH, "//table[@id='keys']//tr[td[2]='carol']")
        row.find_element(By.CSS_SELECTOR, "form.revoke button").click()
        wait(browser).until(
            lambda d: (
                "revoked"
                in (
                    d.find_element(
                        By.XPATH, "//table[@id='keys']//tr[td[2]='carol']"
                    ).get_attribute("class")
                    or ""
                )
            )
        )
        assert api.get("/v1/jobs").status_code == 401
    shoot(browser, "15-keys")
    assert not console_errors(browser)


def test_owner_cannot_reach_another_owners_things(
    console_server: Console, browser: WebDriver, screenshots: Any
) -> None:
    base = console_server.base_url
    with _api(console_server, console_server.new_key("dora")) as api:
        uploaded = api.post(
            "/v1/datasets",
            files={"file": ("concrete_data.csv", (DATA / "concrete_data.csv").read_bytes())},
            data={"name": "dora-private"},
        )
        assert uploaded.status_code == 201, uploaded.text
        dataset = uploaded.json()
        submitted = api.post(
            "/v1/jobs",
            json={
                "dataset_id": dataset["id"],
                "task": "regression",
                "target": "Strength",
                "network": {"layers": [{"type": "dense", "units": 4}]},
                "training": {"epochs": 1},
            },
        )
        assert submitted.status_code == 202, submitted.text
        job = submitted.json()
    sign_in(browser, base, console_server.new_key("eve"))
    browser.get(f"{base}/ui/datasets")
    assert "dora-private" not in browser.page_source
    browser.get(f"{base}/ui/jobs")
    assert job["id"] not in browser.page_source
    for path in (f"/ui/datasets/{dataset['id']}", f"/ui/jobs/{job['id']}"):
        browser.get(base + path)
        assert "404" in browser.find_element(By.TAG_NAME, "h1").text
        assert "dora-private" not in browser.page_source
    shoot(browser, "16-other-owner-404")
    status = browser.execute_async_script(
        f"const done = arguments[0];fetch('/ui/jobs/{job['id']}/events').then(r => done(r.status))"
    )
    assert status == 404
    browser.get(f"{base}/ui/keys")
    assert "403" in browser.find_element(By.TAG_NAME, "h1").text  # not an admin


def test_log_scale_draws_zeros_at_a_floor_and_says_so(
    console_server: Console, browser: WebDriver, screenshots: Any
) -> None:
    """A loss that reaches 0 (or a gradient that is exactly 0) keeps its points on a log plot."""
    sign_in(browser, console_server.base_url, console_server.new_key("zoe"))
    drawn = browser.execute_script(
        "const series = [{name: 'loss (training)', points: [[1, 2.5], [2, 0.4], [3, 0], [4, 0]]},"
        "  {name: 'val_loss (validation)', dashed: true,"
        "   points: [[1, 3], [2, 1], [3, 0.05], [4, 0.02]]}];"
        "const svg = window.dendriteCharts.lineChart("
        "  {series, title: 'loss', yLabel: 'loss', log: true});"
        "document.querySelector('main').replaceChildren(svg);"
        "return {clamped: svg.querySelectorAll('path.clamped').length, text: svg.textContent,"
        "  ticks: [...svg.querySelectorAll('text.tick')].map(t => t.textContent)};"
    )
    assert drawn["clamped"] == 2  # both zeros, neither dropped
    assert "≤ 0, drawn at 0.001" in drawn["text"] and "(log scale)" in drawn["text"]
    assert {"1", "2", "3", "4"} <= set(drawn["ticks"])  # integer epochs, no 1.5
    assert not any("." in tick for tick in drawn["ticks"][:4])
    shoot(browser, "18-log-scale-zeros")


def test_mnist_classifier_from_the_form_trains_and_predicts_labels(
    console_server: Console, browser: WebDriver, screenshots: Any
) -> None:
    base = console_server.base_url
    sign_in(browser, base, console_server.new_key("mona"))
    browser.get(f"{base}/ui/datasets")
    browser.find_element(By.ID, "file").send_keys(str(DATA / "mnist_small.npz"))
    browser.find_element(By.ID, "name").send_keys("mnist")
    browser.find_element(By.CSS_SELECTOR, "#upload button").click()
    wait(browser).until(lambda d: "/ui/datasets/" in d.current_url)
    assert "array 28 x 28" in browser.find_element(By.ID, "preview").text
    shoot(browser, "19-mnist-dataset")

    browser.get(f"{base}/ui/jobs/new?example=mnist")
    textarea = browser.find_element(By.ID, "body")
    body = json.loads(textarea.get_attribute("value") or "{}")
    assert body["task"] == "classification" and body["network"]["layers"][0] == {"type": "flatten"}
    assert Select(browser.find_element(By.ID, "dataset")).first_selected_option.text.startswith(
        "mnist"
    )
    body["training"] |= {"epochs": 2, "validation_split": 0.2}
    browser.execute_script("arguments[0].value = arguments[1]", textarea, json.dumps(body))
    browser.find_element(By.CSS_SELECTOR, "#submit-job button").click()
    wait(browser, 240).until(lambda d: _text(d, "status") == "succeeded")
    wait(browser).until(lambda d: d.find_elements(By.ID, "predict"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#curves figure")) == 2  # loss, accuracy
    browser.find_element(By.CSS_SELECTOR, "#predict button").click()
    wait(browser).until(lambda d: d.find_elements(By.ID, "predictions"))
    predictions = json.loads(_text(browser, "predictions"))
    assert len(predictions) == 1 and len(predictions[0]["probabilities"]) == 10
    shoot(browser, "20-mnist-job")
