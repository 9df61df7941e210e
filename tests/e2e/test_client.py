"""The client library (`clients/python`, `dendrite_client`) against a real `dendrite serve`: the
calls a service makes, typed answers, and the error envelope as exceptions."""

import copy
from collections.abc import Iterator
from pathlib import Path

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
