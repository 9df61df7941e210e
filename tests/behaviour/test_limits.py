"""Request limits (service/api/limits.py) and upload limits, under lowered settings so the tests
stay small: body sizes by Content-Length and while streaming, JSON nesting, rows, Parquet and
NPZ files that decompress to more than they may (or to more than the compression ratio allows),
and prediction bodies with more instances than one request may hold."""

import io
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from service.api.limits import JsonDepth, JsonTooDeep
from service.core.config import Settings, get_settings
from service.schemas.models import MAX_INSTANCES
from tests.api.conftest import assert_envelope, concrete_job, upload_bytes
from tests.conftest import DATA


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[Settings]:
    for name, value in {
        "MAX_REQUEST_BYTES": 2000,
        "MAX_UPLOAD_BYTES": 50_000,
        "MAX_ROWS": 100,
        "MAX_DECOMPRESSED_BYTES": 1 << 20,
    }.items():
        monkeypatch.setenv(f"DENDRITE_{name}", str(value))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def _override(monkeypatch: pytest.MonkeyPatch, **values: int) -> None:
    """Change settings for one test through the environment, as a server would read them (a
    setting patched on the cached object would be lost to a reload)."""
    for name, value in values.items():
        monkeypatch.setenv(f"DENDRITE_{name}", str(value))
    get_settings.cache_clear()


def _chunks(total: int, size: int = 500) -> Iterator[bytes]:
    """A body sent chunked (no Content-Length): only counting the bytes can stop it."""
    for _ in range(total // size):
        yield b" " * size


# --- body size --------------------------------------------------------------------------------


def test_post_body_over_the_limit_is_refused_from_its_content_length(
    client: TestClient, limits: Settings
) -> None:
    response = client.post("/v1/jobs", content=b" " * 2001, headers={"Content-Type": "text/plain"})

    body = assert_envelope(response, 413)
    assert body["error"] == "payload_too_large"
    assert "DENDRITE_MAX_REQUEST_BYTES" in body["detail"] and "2000 bytes" in body["detail"]
    assert response.headers["connection"] == "close"  # the unread rest cannot be a request


def test_chunked_body_over_the_limit_is_cut_off_while_it_streams(
    client: TestClient, limits: Settings
) -> None:
    response = client.post(
        "/v1/jobs", content=_chunks(10_000), headers={"Content-Type": "application/json"}
    )

    body = assert_envelope(response, 413)
    assert "DENDRITE_MAX_REQUEST_BYTES" in body["detail"]
    assert response.headers["connection"] == "close"


def test_chunked_prediction_body_over_the_limit_is_cut_off(
    client: TestClient, limits: Settings
) -> None:
    response = client.post(
        "/v1/models/m/predict", content=_chunks(10_000), headers={"Content-Type": "text/csv"}
    )

    assert "DENDRITE_MAX_REQUEST_BYTES" in assert_envelope(response, 413)["detail"]


def test_body_at_the_limit_is_read(client: TestClient, limits: Settings) -> None:
    content = b'{"instances": [' + b" " * (2000 - 17) + b"]}"
    assert len(content) == 2000

    response = client.post(
        "/v1/models/m/predict", content=content, headers={"Content-Type": "application/json"}
    )

    assert_envelope(response, 422, "/instances")  # read and parsed: the list is empty


def test_upload_is_governed_by_the_upload_limit_not_the_request_limit(
    client: TestClient, limits: Settings
) -> None:
    rows = b"".join(b"%d,%d,%d\n" % (i, i * 10**6, i * 10**9) for i in range(100))
    assert len(rows) > limits.max_request_bytes

    response = upload_bytes(client, b"a,b,c\n" + rows)

    assert response.status_code == 201, response.text


def test_upload_over_the_upload_limit_is_refused_from_its_content_length(
    client: TestClient, limits: Settings
) -> None:
    response = upload_bytes(client, b"a,b\n" + b"1,2\n" * 50_000)

    body = assert_envelope(response, 413)
    assert "DENDRITE_MAX_UPLOAD_BYTES" in body["detail"] and "50000 bytes" in body["detail"]
    assert client.get("/v1/datasets").json()["total"] == 0


def test_chunked_upload_over_the_upload_limit_is_cut_off(
    client: TestClient, limits: Settings
) -> None:
    boundary = b"dendrite-boundary"
    head = (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\na,b\r\n"
    )

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(2000):
            yield b"1,2\r\n" * 100

    response = client.post(
        "/v1/datasets",
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary.decode()}"},
    )

    assert "DENDRITE_MAX_UPLOAD_BYTES" in assert_envelope(response, 413)["detail"]
    assert client.get("/v1/datasets").json()["total"] == 0


def test_file_over_the_upload_limit_within_the_multipart_allowance_is_refused(
    client: TestClient, limits: Settings
) -> None:
    response = upload_bytes(client, b"a,b\n" + b"1,2\n" * 12_600)  # 50,404 bytes of file

    body = assert_envelope(response, 413, "file")
    assert "DENDRITE_MAX_UPLOAD_BYTES" in body["detail"]


# --- JSON nesting -----------------------------------------------------------------------------


def _depth_of(*chunks: bytes, limit: int = 4) -> int:
    depth = JsonDepth(limit)
    for chunk in chunks:
        depth.feed(chunk)
    return depth.depth


def test_json_depth_counts_arrays_and_objects() -> None:
    assert _depth_of(b'{"a": [[1], {"b": [') == 4
    assert _depth_of(b'{"a": [[1], {"b": []}]}') == 0


def test_json_depth_ignores_brackets_in_strings_and_escaped_quotes() -> None:
    assert _depth_of(b'["[[[[", "\\"[[[[", "\\\\", [') == 2


def test_json_depth_follows_an_escape_across_chunks() -> None:
    assert _depth_of(b'["abc\\', b'"[[[[[[", "', b'x"') == 1


def test_json_depth_refuses_one_level_past_the_limit() -> None:
    with pytest.raises(JsonTooDeep):
        _depth_of(b"[[[", b"[[")


def test_json_at_the_depth_limit_reaches_validation(client: TestClient) -> None:
    limit = get_settings().max_json_depth
    content = b'{"dataset_id": ' + b"[" * (limit - 1) + b"]" * (limit - 1) + b"}"

    response = client.post(
        "/v1/jobs", content=content, headers={"Content-Type": "application/json"}
    )

    assert_envelope(response, 422, "/dataset_id")  # pydantic's message: a list is no string


def test_deep_json_with_a_charset_is_refused(client: TestClient) -> None:
    response = client.post(
        "/v1/jobs",
        content=b"[" * 1000,
        headers={"Content-Type": "application/json; charset=utf-8"},
    )

    assert "DENDRITE_MAX_JSON_DEPTH" in assert_envelope(response, 422)["detail"]


# --- rows and decompression bombs -------------------------------------------------------------


def _parquet(table: pa.Table, **options: object) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **options)  # type: ignore[arg-type]
    return buffer.getvalue()


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def test_csv_over_the_row_limit_is_refused(client: TestClient, limits: Settings) -> None:
    response = upload_bytes(client, b"a,b\n" + b"1,2\n" * 101)

    body = assert_envelope(response, 422, "file")
    assert "more than 100 rows" in body["detail"] and "DENDRITE_MAX_ROWS" in body["detail"]


def test_csv_at_the_row_limit_is_accepted(client: TestClient, limits: Settings) -> None:
    response = upload_bytes(client, b"a,b\n" + b"1,2\n" * 100)

    assert response.status_code == 201 and response.json()["rows"] == 100


def test_parquet_over_the_row_limit_is_refused_from_its_footer(
    client: TestClient, limits: Settings
) -> None:
    content = _parquet(pa.table({"a": np.zeros(101)}))

    response = upload_bytes(client, content, "big.parquet", content_type="application/octet-stream")

    assert "101 rows" in assert_envelope(response, 422, "file")["detail"]


def test_npz_over_the_row_limit_is_refused_from_its_header(
    client: TestClient, limits: Settings
) -> None:
    content = _npz(x=np.zeros((101, 2)), y=np.zeros(101))

    response = upload_bytes(client, content, "big.npz", content_type="application/octet-stream")

    assert "101 samples in 'x'" in assert_envelope(response, 422, "file")["detail"]


def test_compressed_npz_bomb_is_refused(client: TestClient, limits: Settings) -> None:
    content = _npz(x=np.zeros((4, 1 << 18)), y=np.zeros(4))  # 8 MiB of zeros
    assert len(content) < 50_000

    response = upload_bytes(client, content, "bomb.npz", content_type="application/octet-stream")

    body = assert_envelope(response, 413, "file")
    assert "8,388," in body["detail"] and "DENDRITE_MAX_DECOMPRESSED_BYTES" in body["detail"]
    assert client.get("/v1/datasets").json()["total"] == 0


def test_compressed_parquet_bomb_is_refused_from_its_footer(
    client: TestClient, limits: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "max_rows", 10**9)
    table = pa.table({"a": np.zeros(1 << 18), "b": np.ones(1 << 18)})  # 4 MiB of float64
    content = _parquet(table, use_dictionary=False, compression="zstd")
    assert len(content) < 50_000

    response = upload_bytes(client, content, "bomb.parquet", content_type="application/x-parquet")

    body = assert_envelope(response, 413, "file")
    assert "footer" in body["detail"] and "DENDRITE_MAX_DECOMPRESSED_BYTES" in body["detail"]


def test_dictionary_parquet_bomb_is_refused_while_decoding(
    client: TestClient, limits: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "max_rows", 10**9)
    text = "x" * 1000
    table = pa.table({"a": pa.array([text] * 20_000)})  # 20 MB of text, one dictionary entry
    content = _parquet(table, compression="zstd")
    assert len(content) < 50_000

    response = upload_bytes(client, content, "bomb.parquet", content_type="application/x-parquet")

    body = assert_envelope(response, 413, "file")
    assert "decode to more than" in body["detail"]


def test_job_over_the_request_limit_is_refused_before_it_is_parsed(
    client: TestClient, limits: Settings
) -> None:
    body = concrete_job("concrete", features=["Cement"] * 500)

    response = client.post("/v1/jobs", json=body)

    assert_envelope(response, 413)


def test_npz_expanding_past_the_compression_ratio_is_refused(
    client: TestClient, limits: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _override(monkeypatch, MAX_DECOMPRESSED_BYTES=1 << 30)
    content = _npz(x=np.zeros((16, 1 << 17)), y=np.zeros(16))  # 16 MiB of zeros
    assert len(content) < 50_000

    response = upload_bytes(client, content, "bomb.npz", content_type="application/octet-stream")

    body = assert_envelope(response, 413, "file")
    assert "DENDRITE_MAX_COMPRESSION_RATIO" in body["detail"] and "100 times" in body["detail"]
    assert client.get("/v1/datasets").json()["total"] == 0


def test_parquet_expanding_past_the_compression_ratio_is_refused(
    client: TestClient, limits: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _override(monkeypatch, MAX_DECOMPRESSED_BYTES=1 << 30, MAX_ROWS=10**9)
    content = _parquet(pa.table({"a": np.zeros(1 << 21)}), compression="zstd")  # 16 MiB

    response = upload_bytes(client, content, "bomb.parquet", content_type="application/x-parquet")

    body = assert_envelope(response, 413, "file")
    assert "DENDRITE_MAX_COMPRESSION_RATIO" in body["detail"]


def test_real_npz_and_parquet_are_under_the_compression_ratio(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ratio checked despite their size.
    monkeypatch.setattr("service.formats.limits.RATIO_GRACE_BYTES", 0)
    concrete = io.BytesIO()
    pd.read_csv(DATA / "concrete_data.csv").to_parquet(concrete)

    images = upload_bytes(
        client, (DATA / "mnist_small.npz").read_bytes(), "mnist.npz", content_type="x"
    )
    table = upload_bytes(client, concrete.getvalue(), "concrete.parquet", content_type="x")

    assert images.status_code == 201, images.text
    assert table.status_code == 201, table.text


# --- prediction instances ---------------------------------------------------------------------


def test_json_prediction_over_the_instance_limit_is_refused(client: TestClient) -> None:
    instances = [{"a": 1}] * (MAX_INSTANCES + 1)

    response = client.post("/v1/models/m/predict", json={"instances": instances})

    assert "at most 100000 items" in assert_envelope(response, 422, "/instances")["detail"]


def test_csv_prediction_over_the_instance_limit_is_refused_as_json_is(client: TestClient) -> None:
    content = b"a\n" + b"1\n" * (MAX_INSTANCES + 1)

    response = client.post(
        "/v1/models/m/predict", content=content, headers={"Content-Type": "text/csv"}
    )

    detail = assert_envelope(response, 422)["detail"]
    assert "more than 100,000 rows" in detail and "split" in detail


def test_csv_prediction_at_the_instance_limit_reaches_the_model(client: TestClient) -> None:
    content = b"a\n" + b"1\n" * MAX_INSTANCES

    response = client.post(
        "/v1/models/m/predict", content=content, headers={"Content-Type": "text/csv"}
    )

    assert_envelope(response, 404, "model_id")  # read whole, then looked up
