"""A corpus of bad requests: each is a 4xx in the one envelope whose detail or field names what to
fix; none is a 500 and none leaks a stack trace.

Predict rows with a missing feature or wrong types need a trained model: tests/e2e covers them.
"""

import io
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as default
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from service import examples
from tests.api.conftest import assert_envelope, concrete_job, mnist_job, upload_bytes, upload_file
from tests.conftest import DATA

Send = Callable[[TestClient], Response]


@dataclass
class Case:
    id: str
    send: Send
    status: int
    field: str | None = None  # the envelope's "field", where one applies
    words: list[str] = default(default_factory=list)  # what the detail must mention


def concrete(client: TestClient) -> None:
    assert upload_file(client, "concrete_data.csv", name="concrete").status_code == 201


def post_job(body: dict[str, Any], *datasets: str) -> Send:
    """Upload the named tests/data files (as name=stem), then submit `body` to /v1/jobs."""

    def send(client: TestClient) -> Response:
        for filename in datasets:
            stem = filename.split("_")[0].split(".")[0]
            assert upload_file(client, filename, name=stem).status_code == 201
        return client.post("/v1/jobs", json=body)

    return send


def concrete_with(**changes: Any) -> Send:
    """The concrete course job with changes at JSON pointers ("/training/epochs": "ten")."""
    body = concrete_job("concrete")
    for pointer, value in changes.items():
        *parents, last = pointer.strip("/").split("/")
        node: Any = body
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return post_job(body, "concrete_data.csv")


def layers(*hidden: dict[str, Any]) -> Send:
    return concrete_with(**{"/network/layers": list(hidden)})


def post_raw(path: str, content: bytes, content_type: str = "application/json") -> Send:
    def send(client: TestClient) -> Response:
        concrete(client)
        return client.post(path, content=content, headers={"Content-Type": content_type})

    return send


def upload(content: bytes, filename: str, content_type: str = "text/csv") -> Send:
    return lambda client: upload_bytes(client, content, filename, content_type=content_type)


def upload_then_job(content: bytes, filename: str, body: dict[str, Any]) -> Send:
    def send(client: TestClient) -> Response:
        assert upload_bytes(client, content, filename, name="data").status_code == 201
        return client.post("/v1/jobs", json={"dataset_id": "data", **body})

    return send


def concrete_with_text_cement() -> bytes:
    lines = (DATA / "concrete_data.csv").read_text().splitlines()
    lines[5] = "abc," + lines[5].split(",", 1)[1]
    return ("\n".join(lines) + "\n").encode()


def npz_bytes(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


ONE_CLASS = b"a,b,label\n1,2,yes\n3,4,yes\n5,6,yes\n7,8,yes\n"
SMALL_NET = {"network": {"layers": [{"type": "dense", "units": 4}]}}
PENGUINS_NO_POLICY = {
    "dataset_id": "penguins",
    "task": "classification",
    "target": "species",
    **SMALL_NET,
}
MNIST_WRONG_TARGET = {**mnist_job("mnist"), "target": "label"}
NO_VALIDATION = {
    "/training/validation_split": 0.0,
    "/training/early_stopping": {"monitor": "val_loss"},
}
OUTPUT_STEP = {"layers": [{"type": "dense", "units": 8}], "output_activation": "binary_step"}
DENSE = {"type": "dense", "units": 8}
STR_BYTES = "UTF-16 text".encode("utf-16")

CASES = [
    # --- the network ------------------------------------------------------------------------
    Case("unknown layer type", layers({"type": "lstm", "units": 8}), 422,
         "/network/layers/0/type", ["lstm", "dense", "conv2d"]),
    Case("lambda layer", layers(DENSE, {"type": "lambda", "function": "x"}), 422,
         "/network/layers/1/type", ["lambda"]),
    Case("layer without type", layers({"units": 8}), 422, "/network/layers/0/type", ["type"]),
    Case("unknown activation", layers({"type": "dense", "units": 8, "activation": "relux"}), 422,
         "/network/layers/0/activation", ["relux", "relu", "sigmoid"]),
    Case("binary_step activation", layers({**DENSE, "activation": "binary_step"}), 422,
         "/network/layers/0/activation", ["binary_step", "gradient"]),
    Case("binary_step output", concrete_with(**{"/network": OUTPUT_STEP}), 422,
         "/network/output_activation", ["binary_step", "gradient"]),
    Case("units 0", layers({"type": "dense", "units": 0}), 422,
         "/network/layers/0/units", ["greater than 0"]),
    Case("units missing", layers({"type": "dense"}), 422, "/network/layers/0/units", ["required"]),
    Case("dropout rate 1.0", layers(DENSE, {"type": "dropout", "rate": 1.0}), 422,
         "/network/layers/1/rate", ["less than 1"]),
    Case("unknown layer argument", layers({"type": "dense", "units": 8, "kernel": "big"}), 422,
         "/network/layers/0/kernel", ["not permitted"]),
    Case("no layers", layers(), 422, "/network/layers", ["at least 1"]),
    Case("layers not a list", concrete_with(**{"/network/layers": "dense"}), 422,
         "/network/layers", ["list"]),
    Case("image layer on a table", layers({"type": "conv2d", "filters": 4}), 422,
         "/network/layers/0/type", ["conv2d", "image"]),
    # --- the request's other fields ---------------------------------------------------------
    Case("target not in dataset", concrete_with(target="strength"), 422, "/target",
         ["strength", "Strength"]),
    Case("listed feature missing", concrete_with(features=["Cement", "Slag"]), 422,
         "/features/1", ["Slag"]),
    Case("target listed as feature", concrete_with(features=["Cement", "Strength"]), 422,
         "/features/1", ["Strength", "target"]),
    Case("epochs as text", concrete_with(**{"/training/epochs": "ten"}), 422, "/training/epochs",
         ["integer"]),
    Case("epochs negative", concrete_with(**{"/training/epochs": -1}), 422, "/training/epochs", []),
    Case("batch size as list", concrete_with(**{"/training/batch_size": [32]}), 422,
         "/training/batch_size", ["integer"]),
    Case("splits leave no training rows",
         concrete_with(**{"/training/validation_split": 0.6, "/training/test_split": 0.4}), 422,
         "/training", ["validation_split", "test_split"]),
    Case("unknown task", concrete_with(task="clustering"), 422, "/task",
         ["regression", "classification"]),
    Case("unknown optimizer", concrete_with(**{"/training/optimizer/name": "newton"}), 422,
         "/training/optimizer/name", ["adam"]),
    Case("momentum for adam", concrete_with(**{"/training/optimizer/momentum": 0.9}), 422,
         "/training/optimizer", ["momentum", "sgd"]),
    Case("classification loss for regression",
         concrete_with(**{"/training/loss": "categorical_crossentropy"}), 422, "/training/loss",
         ["categorical_crossentropy", "regression"]),
    Case("accuracy metric for regression",
         concrete_with(**{"/training/metrics": ["mae", "accuracy"]}), 422,
         "/training/metrics/1", ["accuracy"]),
    Case("early stopping on val_loss without validation", concrete_with(**NO_VALIDATION), 422,
         "/training/early_stopping/monitor", ["val_loss", "validation_split"]),
    Case("extra unknown field", concrete_with(color="red"), 422, "/color", ["not permitted"]),
    Case("extra field in training", concrete_with(**{"/training/learning_rate": 0.1}), 422,
         "/training/learning_rate", ["not permitted"]),
    Case("unknown device", concrete_with(device="tpu"), 422, "/device", ["cpu", "gpu"]),
    Case("unknown missing policy", concrete_with(**{"/preprocessing/missing": "zero"}), 422,
         "/preprocessing/missing", ["drop", "mean"]),
    Case("unknown dataset", post_job(concrete_job("nope")), 404, "dataset_id", ["nope"]),
    Case("classification target with one class",
         upload_then_job(ONE_CLASS, "one.csv",
                         {"task": "classification", "target": "label", **SMALL_NET}),
         422, "/target", ["label", "1 class", "at least 2"]),
    Case("regression on a text target",
         upload_then_job(ONE_CLASS, "one.csv",
                         {"task": "regression", "target": "label", **SMALL_NET}),
         422, "/target", ["label", "text"]),
    Case("penguins missing values without a policy", post_job(PENGUINS_NO_POLICY, "penguins.csv"),
         422, "/preprocessing/missing",
         ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "drop"]),
    Case("npz target other than y", post_job(MNIST_WRONG_TARGET, "mnist_small.npz"), 422,
         "/target", ["'y'"]),
    # --- the body itself --------------------------------------------------------------------
    Case("invalid JSON body", post_raw("/v1/jobs", b'{"dataset_id": "concrete",'), 422, None,
         ["JSON"]),
    Case("empty body", post_raw("/v1/jobs", b""), 422, None, ["body"]),
    Case("body is a list", post_raw("/v1/jobs", b"[1, 2]"), 422, None, ["body", "object"]),
    Case("body as form", post_raw("/v1/jobs", b"task=regression", "text/plain"), 422, None,
         ["body"]),
    Case("required fields missing", post_raw("/v1/jobs", b'{"dataset_id": "concrete"}'), 422,
         "/task", ["required", "2 more"]),
    Case("idempotency key too long",
         lambda client: client.post("/v1/jobs", json=concrete_job("concrete"),
                                    headers={"Idempotency-Key": "k" * 300}),
         422, "idempotency-key", ["255"]),
    Case("spec validation of a bad network",
         lambda client: client.post("/v1/specs/validate",
                                    json={**concrete_job("concrete"), "network": {"layers": []}}),
         422, "/network/layers", ["at least 1"]),
    # --- uploads ----------------------------------------------------------------------------
    Case("empty file", upload(b"", "empty.csv"), 422, "file", ["empty"]),
    Case("text in a numeric column", upload(concrete_with_text_cement(), "concrete.csv"), 422,
         "Cement", ["Cement", "abc"]),
    Case("CSV named .npz", upload(b"a,b\n1,2\n", "data.npz"), 422, "file", ["NPZ", "CSV"]),
    Case("CSV named .parquet", upload(b"a,b\n1,2\n", "data.parquet"), 422, "file",
         ["Parquet", "CSV"]),
    Case("NPZ arrays named .csv", upload(npz_bytes(x=np.zeros((3, 2)), y=np.zeros(3)), "data.csv"),
         422, "file", ["CSV", "NPZ"]),
    Case("binary file", upload(bytes(range(256)), "data.bin", "application/octet-stream"), 415,
         "file", ["CSV", "Parquet", "NPZ"]),
    Case("spreadsheet extension", upload(b"a,b\n1,2\n", "data.xlsx"), 415, "file",
         [".xlsx", "CSV", "Parquet", "NPZ"]),
    Case("broken NPZ", upload(b"PK\x03\x04not a zip at all", "data.npz"), 422, "file", ["NPZ"]),
    Case("broken Parquet", upload(b"PAR1not parquet", "data.parquet"), 422, "file", ["Parquet"]),
    Case("NPZ without x and y", upload(npz_bytes(a=np.zeros(3)), "data.npz"), 422, "file", ["x"]),
    Case("CSV with a header only", upload(b"a,b\n", "data.csv"), 422, "file", ["no data rows"]),
    Case("UTF-16 CSV", upload(STR_BYTES, "data.csv"), 422, "file", ["UTF-16", "UTF-8"]),
    Case("Latin-1 CSV", upload("name,value\nJosé,1\n".encode("latin-1"), "data.csv"), 422, "file",
         ["UTF-8"]),
    Case("no file part", lambda client: client.post("/v1/datasets", data={"name": "x"}), 422,
         "file", ["required"]),
    Case("name too long",
         lambda client: upload_bytes(client, b"a,b\n1,2\n", "d.csv", name="n" * 300), 422,
         "name", ["255"]),
    # --- reads and predictions --------------------------------------------------------------
    Case("preview limit 0", lambda client: client.get("/v1/datasets/x/preview?limit=0"), 422,
         "limit", ["greater than or equal to 1"]),
    Case("page limit too large", lambda client: client.get("/v1/jobs?limit=100000"), 422, "limit",
         ["500"]),
    Case("negative offset", lambda client: client.get("/v1/datasets?offset=-1"), 422, "offset", []),
    Case("unknown job status", lambda client: client.get("/v1/jobs?status=done"), 422, "status",
         ["queued"]),
    Case("predict with invalid JSON", post_raw("/v1/models/m/predict", b"{oops"), 422, None,
         ["JSON"]),
    Case("predict without instances", post_raw("/v1/models/m/predict", b"{}"), 422, "/instances",
         ["instances", "required"]),
    Case("predict with empty instances",
         lambda client: client.post("/v1/models/m/predict", json={"instances": []}), 422,
         "/instances", ["at least 1"]),
    Case("predict with an empty CSV", post_raw("/v1/models/m/predict", b"", "text/csv"), 422, None,
         ["CSV"]),
    Case("predict with XML", post_raw("/v1/models/m/predict", b"<a/>", "application/xml"), 415,
         None, ["application/xml", "text/csv"]),
    Case("predict with an unknown model",
         lambda client: client.post("/v1/models/m/predict", json=examples.CONCRETE_PREDICT), 404,
         "model_id", ["'m'"]),
    Case("unknown path", lambda client: client.get("/v1/nothing"), 404, None, ["Not Found"]),
    Case("wrong method", lambda client: client.put("/v1/jobs"), 405, None, ["Method Not Allowed"]),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_send_bad_input_returns_4xx_envelope_naming_the_fault(
    client: TestClient, case: Case
) -> None:
    response = case.send(client)

    assert response.status_code < 500, response.text  # never a 500, whatever the input
    body = assert_envelope(response, case.status, case.field)
    detail = body["detail"]
    assert "Traceback" not in detail and 'File "' not in detail
    for word in case.words:
        assert word in detail, f"{word!r} not in {detail!r}"
