"""The client library (`clients/python`, `dendrite_client`) against a real `dendrite serve`: the
calls a service makes, typed answers, and the error envelope as exceptions."""

import copy
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from dendrite_client import Dendrite, errors

from service.schemas import examples
from tests.e2e.conftest import Service
from tests.e2e.flows import DATA

ROW = examples.CONCRETE_PREDICT["instances"][0]


@pytest.fixture
def dendrite(embedded: Service) -> Iterator[Dendrite]:
    key = embedded.client.headers["Authorization"].removeprefix("Bearer ")
    with Dendrite(str(embedded.client.base_url), key) as client:
        yield client


def test_train_register_deploy_and_predict(dendrite: Dendrite, tmp_path: Path) -> None:
    dataset = dendrite.upload(DATA / "concrete_data.csv", name="concrete-client")
    assert dataset.rows == 1030
    body = copy.deepcopy(examples.CONCRETE_REGRESSION)
    body["dataset_id"] = dataset.id
    body["training"]["epochs"] = 3

    job = dendrite.wait(dendrite.submit(body).id, timeout=240)

    assert job.status.value == "succeeded" and job.model_id is not None
    assert [row.epoch for row in dendrite.history(job.id).epochs] == [1, 2, 3]
    version = dendrite.register(job.model_id, "strength-client", alias="production")
    assert version.version == 1 and version.aliases == ["production"]
    by_alias = dendrite.predict("strength-client@production", [ROW])
    assert by_alias == dendrite.predict(job.model_id, [ROW])
    assert dendrite.model("strength-client/versions/1").id == job.model_id
    assert dendrite.download("strength-client@production", tmp_path / "m.keras").stat().st_size
    assert [(m.from_version, m.to_version) for m in dendrite.alias_moves("strength-client")] == [
        (None, 1)
    ]


def test_errors_are_typed_exceptions(dendrite: Dendrite) -> None:
    with pytest.raises(errors.NotFound) as missing:
        dendrite.model("nope")
    assert missing.value.field == "model_id"
    with pytest.raises(errors.InvalidInput) as invalid:
        dendrite.submit({"dataset_id": "x"})
    assert invalid.value.status == 422
    with (
        Dendrite(str(dendrite.http.base_url), "dk_wrong") as stranger,
        pytest.raises(errors.Unauthorized),
    ):
        stranger.model("nope")


def _rows_file(path: Path, rows: int) -> Path:
    """`rows` concrete-shaped rows with an `id` column; every 1,000th row lacks its cement."""
    source = pd.read_csv(DATA / "concrete_data.csv", skipinitialspace=True)
    frame = source.sample(rows, replace=True, random_state=0).reset_index(drop=True)
    frame.insert(0, "id", range(rows))
    frame.loc[frame.index % 1000 == 999, "Cement"] = None
    frame.to_csv(path, index=False)
    return path


def test_batch_scoring_with_progress_events_and_cancel(dendrite: Dendrite, tmp_path: Path) -> None:
    dataset = dendrite.upload(DATA / "concrete_data.csv", name="concrete-batch")
    body = copy.deepcopy(examples.CONCRETE_REGRESSION)
    body.update(dataset_id=dataset.id, register_as={"name": "batch", "alias": "production"})
    body["training"]["epochs"] = 2
    job = dendrite.wait(dendrite.submit(body).id, timeout=240)
    assert job.status.value == "succeeded", job.error
    rows = dendrite.upload(_rows_file(tmp_path / "rows.csv", 20_000), name="rows")

    batch = dendrite.batch_predict(
        "batch@production", rows.id, "parquet", passthrough_columns=["id"], chunk_rows=1000
    )
    assert batch.model_id == job.model_id
    seen = [
        data["progress"]["rows_done"]
        for kind, data in dendrite.batch_events(batch.id)
        if kind == "progress"
    ]
    assert seen and seen == sorted(seen) and seen[-1] == 20_000
    done = dendrite.wait_batch_prediction(batch.id, timeout=240)
    assert done.status.value == "succeeded", done.error
    assert (done.progress.rows_done, done.progress.rows_failed) == (20_000, 20)
    result = pd.read_parquet(dendrite.download_batch_result(batch.id, tmp_path / "r.parquet"))
    assert len(result) == 19_980 and result["id"].is_monotonic_increasing
    errors_file = dendrite.download_batch_result(batch.id, tmp_path / "e.csv", errors_file=True)
    assert pd.read_csv(errors_file)["row"].tolist() == list(range(999, 20_000, 1000))
    first = pd.read_csv(tmp_path / "rows.csv").drop(columns=["id", "Strength"]).head(3)
    expected = dendrite.predict(job.model_id, first.to_dict("records"))
    assert result["prediction"].head(3).tolist() == pytest.approx(
        [p["Strength"] for p in expected], abs=1e-4
    )

    # A long one, cancelled while it runs: it stops after the chunk it scores, and keeps no file.
    big = dendrite.upload(_rows_file(tmp_path / "big.csv", 300_000), name="big")
    running = dendrite.batch_predict(job.model_id, big.id, chunk_rows=100)
    for kind, _ in dendrite.batch_events(running.id):
        if kind == "progress":
            dendrite.cancel_batch_prediction(running.id)
            break
    cancelled = dendrite.wait_batch_prediction(running.id, timeout=120)
    assert cancelled.status.value == "cancelled"
    assert 0 < cancelled.progress.rows_done < 300_000
    with pytest.raises(errors.Conflict):
        dendrite.download_batch_result(running.id, tmp_path / "none.csv")
