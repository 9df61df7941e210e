"""A corpus of bad requests: each is a 4xx in the one envelope whose detail or field names what to
fix; none is a 500 and none leaks a stack trace.

Predict rows with a missing feature or wrong types need a trained model: tests/e2e covers them.
Limits that need lowered settings to test cheaply (body size, rows, decompression bombs) are in
tests/behaviour/test_limits.py.
"""

import io
import json
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as default
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from service.schemas import examples
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


def npz_with_pickle() -> bytes:
    """An object array: numpy pickles it, and unpickling can run code."""
    buffer = io.BytesIO()
    np.savez(buffer, x=np.array([{"a": 1}, None], dtype=object), y=np.zeros(2))
    return buffer.getvalue()


def npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    """A .npy version 1.0 header declaring `shape`, padded as numpy pads it."""
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def npz_declaring(shape: tuple[int, ...], data: bytes = b"\0" * 16) -> bytes:
    """An NPZ whose 'x' header declares `shape` but holds only `data`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.npy", npy_header(shape) + data)
        archive.writestr("y.npy", npy_header((2,)) + b"\0" * 16)
    return buffer.getvalue()


def npz_with_entries(count: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index in range(count):
            archive.writestr(f"a{index}.npy", b"")
    return buffer.getvalue()


def post_json_as(path: str, content_type: str | None) -> Send:
    """The concrete job, as JSON text, labelled with another Content-Type (or none)."""
    content = json.dumps(concrete_job("concrete")).encode()
    headers = {"Content-Type": content_type} if content_type else {}

    def send(client: TestClient) -> Response:
        concrete(client)
        return client.post(path, content=content, headers=headers)

    return send


def nested(depth: int) -> bytes:
    return b'{"dataset_id": "concrete", "task": ' + b"[" * depth + b"]" * depth + b"}"


def mnist_layers(*hidden: dict[str, Any], path: str = "/v1/jobs") -> Send:
    """The MNIST course job with other hidden layers, sent to `path`."""
    body = mnist_job("mnist")
    body["network"]["layers"] = list(hidden)

    def send(client: TestClient) -> Response:
        assert upload_file(client, "mnist_small.npz", name="mnist").status_code == 201
        return client.post(path, json=body)

    return send


def parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
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
WIDE = {"type": "dense", "units": 65536}
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
STR_BYTES = "UTF-16 text".encode("utf-16")
DUPLICATE_PARQUET = parquet_bytes(pa.Table.from_arrays([pa.array([1]), pa.array([2])], ["a", "a"]))

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
    Case("too many layers", layers(*[DENSE] * 101), 422, "/network/layers",
         ["101 layers", "100", "DENDRITE_MAX_LAYERS"]),
    Case("too many parameters", layers(DENSE, {"type": "dense", "units": 65536}, WIDE), 422,
         "/network/layers/2", ["DENDRITE_MAX_PARAMETERS", "50,000,000", "4,295,032,832"]),
    Case("pooling window larger than the image",
         mnist_layers({"type": "max_pooling2d", "pool_size": 29}, {"type": "flatten"}), 422,
         "/network/layers/0", ["29x29", "28x28"]),
    Case("convolution kernel larger than the pooled image",
         mnist_layers({"type": "max_pooling2d", "pool_size": 7},
                      {"type": "conv2d", "filters": 2, "kernel_size": 5}, {"type": "flatten"}),
         422, "/network/layers/1", ["5x5", "4x4"]),
    Case("images reach the output unflattened", mnist_layers({"type": "dense", "units": 10}), 422,
         "/network/layers/0", ["[28, 10]", "flatten"]),
    Case("spec validation of a window larger than the image",
         mnist_layers({"type": "average_pooling2d", "pool_size": [2, 30]}, {"type": "flatten"},
                      path="/v1/specs/validate"),
         422, "/network/layers/0", ["2x30", "28x28"]),
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
    Case("too many epochs", concrete_with(**{"/training/epochs": 10_001}), 422, "/training/epochs",
         ["10001 epochs", "10000", "DENDRITE_MAX_EPOCHS"]),
    Case("epochs beyond any integer column", concrete_with(**{"/training/epochs": 10**30}), 422,
         "/training/epochs", ["DENDRITE_MAX_EPOCHS"]),
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
    Case("NUL in a dataset id", post_job(concrete_job("con\x00crete")), 422, "/dataset_id",
         ["NUL"]),
    Case("NUL in a path", lambda client: client.get("/v1/jobs/a%00b"), 400, None, ["NUL", "%00"]),
    Case("NUL in a query", lambda client: client.get("/v1/jobs?status=%00"), 400, None, ["NUL"]),
    Case("NUL in a dataset name",
         lambda client: upload_bytes(client, b"a,b\n1,2\n", "d.csv", name="a\x00b"), 422, "name",
         ["NUL"]),
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
    Case("JSON job sent as text/plain", post_json_as("/v1/jobs", "text/plain"), 415, None,
         ["text/plain", "Content-Type: application/json"]),
    Case("JSON job sent as a form (curl -d without -H)",
         post_json_as("/v1/jobs", "application/x-www-form-urlencoded"), 415, None,
         ["application/x-www-form-urlencoded", "application/json"]),
    Case("JSON job without a Content-Type", post_json_as("/v1/jobs", None), 415, None,
         ["without a Content-Type", "application/json"]),
    Case("JSON spec sent as text/csv", post_json_as("/v1/specs/validate", "text/csv"), 415, None,
         ["text/csv", "application/json"]),
    Case("100000 nested arrays", post_raw("/v1/jobs", b"[" * 100_000), 422, None,
         ["32 levels", "DENDRITE_MAX_JSON_DEPTH"]),
    Case("100000 nested objects",
         post_raw("/v1/specs/validate", b'{"a": ' * 100_000 + b"1" + b"}" * 100_000), 422, None,
         ["32 levels", "DENDRITE_MAX_JSON_DEPTH"]),
    Case("nesting one level too deep", post_raw("/v1/jobs", nested(32)), 422, None,
         ["32 levels"]),
    Case("deep nesting in predictions", post_raw("/v1/models/m/predict", b"[" * 5000), 422, None,
         ["DENDRITE_MAX_JSON_DEPTH"]),
    Case("brackets inside a string are not nesting",
         post_raw("/v1/jobs", b'{"dataset_id": "' + b"[" * 5000 + b'\\"[{"}'), 422, "/task",
         ["required"]),
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
    Case("duplicate column names", upload(b"a,b,a\n1,2,3\n", "dup.csv"), 422, "a",
         ["'a'", "twice"]),
    Case("duplicate column names after trimming", upload(b"a, a\n1,2\n", "dup.csv"), 422, "a",
         ["twice"]),
    Case("duplicate Parquet column names", upload(DUPLICATE_PARQUET, "dup.parquet"), 422, "a",
         ["twice"]),
    Case("infinite value in a CSV", upload(b"a,b\n1,2\n3,inf\n", "inf.csv"), 422, "b",
         ["infinite", "row 2"]),
    Case("negative infinity in a CSV", upload(b"a,b\n1,-Infinity\n3,4\n", "inf.csv"), 422,
         "b", ["infinite"]),
    Case("NaN in an NPZ array", upload(npz_bytes(x=np.array([[1.0], [np.nan]]), y=np.zeros(2)),
                                       "nan.npz"), 422, "x", ["NaN"]),
    Case("NaN cells and a job without a missing policy",
         upload_then_job(b"a,b,t\n1,NaN,1\n2,3,4\n3,4,5\n", "nan.csv",
                         {"task": "regression", "target": "t", **SMALL_NET}),
         422, "/preprocessing/missing", ["b (1)", "drop", "mean"]),
    Case("mixed numbers and text", upload(b"a,b\n1,2\n3,x\n4,5\n5,6\n", "mixed.csv"), 422, "b",
         ["numbers", "'x'", "row 2"]),
    Case("mixed numbers and booleans", upload(b"a,b\n1,2\n3,true\n4,5\n5,6\n", "m.csv"), 422,
         "b", ["'true'"]),
    Case("invalid UTF-8 in the header", upload(b"caf\xe9,b\n1,2\n", "latin.csv"), 422, "file",
         ["line 1", "0xe9", "UTF-8"]),
    Case("invalid UTF-8 on a late line",
         upload(b"a,b\n" + b"1,2\n" * 5000 + b"3,\xff\n", "late.csv"), 422, "file",
         ["line 5002", "0xff"]),
    Case("more columns than allowed",
         upload((",".join(f"c{i}" for i in range(1001)) + "\n" + ",".join(["1"] * 1001) + "\n")
                .encode(), "wide.csv"), 422, "file", ["1,001 columns", "DENDRITE_MAX_COLUMNS"]),
    Case("PNG named .csv", upload(PNG, "data.csv", "text/csv"), 415, "file",
         ["not a CSV, Parquet or NPZ"]),
    Case("PNG sent as image/png", upload(PNG, "photo.png", "image/png"), 415, "file",
         ["image/png", "CSV"]),
    Case("NPZ with a pickled object array", upload(npz_with_pickle(), "obj.npz"), 422, "x",
         ["object arrays are refused"]),
    Case("NPZ header declaring 8 TiB", upload(npz_declaring((1 << 40,)), "bomb.npz"), 413, "file",
         ["8,796,093,022,208 bytes", "DENDRITE_MAX_DECOMPRESSED_BYTES"]),
    Case("NPZ header declaring more than it holds", upload(npz_declaring((1000,)), "short.npz"),
         422, "x", ["could not be loaded", "8000 bytes"]),
    Case("NPZ with thousands of entries", upload(npz_with_entries(5000), "many.npz"), 422, "file",
         ["5,000 entries"]),
    Case("truncated NPZ", upload(npz_bytes(x=np.zeros((3, 2)), y=np.zeros(3))[:-30], "cut.npz"),
         422, "file", ["NPZ"]),
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


def test_wrong_method_answer_lists_the_allowed_methods(client: TestClient) -> None:
    response = client.put("/v1/jobs")

    assert_envelope(response, 405)
    assert "POST" in response.headers["allow"]  # Starlette names the first route's methods
