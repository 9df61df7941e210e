"""The artifact store, on a local directory and on S3 (moto's server on loopback, over HTTP)."""

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from pydantic import ValidationError

from service.core import errors, storage
from service.core.config import Settings
from tests.conftest import S3_CREDENTIALS


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, settings: Settings) -> str:
    """Each test runs on both stores; "s3" points the settings at a fresh bucket."""
    if request.param == "s3":
        request.getfixturevalue("s3_store")
    return str(request.param)


def _s3_client(settings: Settings) -> tuple[Any, str]:
    """A client of the test's own (nothing hidden by a cache), and the store's bucket."""
    bucket = (settings.artifacts_url or "").removeprefix("s3://").split("/")[0]
    client = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=S3_CREDENTIALS["AWS_DEFAULT_REGION"],
    )
    return client, bucket


def _s3_objects(settings: Settings) -> list[str]:
    """What the bucket holds: objects, and multipart uploads begun but not completed."""
    client, bucket = _s3_client(settings)
    try:
        objects = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    finally:
        client.close()
    return [o["Key"] for o in objects] + [f"(incomplete upload) {u['Key']}" for u in uploads]


def _everything(store: str) -> list[str]:
    """Every file or object in the store, temporary ones included."""
    settings = storage.get_settings()
    if store == "s3":
        return _s3_objects(settings)
    return [str(p) for p in settings.artifacts_path.rglob("*") if p.is_file()]


def _read(key: str) -> bytes:
    with storage.local_file(key) as path:
        return path.read_bytes()


def test_write_stream_returns_size_and_sha256(store: str) -> None:
    size, sha256 = storage.write_stream("datasets/a.csv", [b"a,b\n", b"1,2\n"], max_bytes=100)

    assert (size, sha256) == (8, hashlib.sha256(b"a,b\n1,2\n").hexdigest())
    assert _read("datasets/a.csv") == b"a,b\n1,2\n"
    assert storage.exists("datasets/a.csv")
    assert storage.is_local() == (store == "local")


def test_local_store_keeps_files_in_place(settings: Settings) -> None:
    storage.write_stream("models/m.keras", [b"weights"], max_bytes=100)

    with storage.local_file("models/m.keras") as path:
        assert path == settings.artifacts_path / "models" / "m.keras"
    assert path.read_bytes() == b"weights"  # the stored file itself, not a copy


def test_s3_store_writes_objects_under_its_prefix(s3_store: Settings) -> None:
    storage.write_stream("datasets/a.csv", [b"a\n1\n"], max_bytes=100)

    assert _s3_objects(s3_store) == ["artifacts/datasets/a.csv"]
    with storage.local_file("datasets/a.csv") as path:
        copy = path
        assert path.read_bytes() == b"a\n1\n"
    assert not copy.exists()  # the temporary copy is gone with the block


def test_large_object_goes_up_in_parts_and_comes_back_whole(store: str) -> None:
    part = bytes(range(256)) * 4096  # 1 MiB
    chunks = [part] * (2 * storage.PART_BYTES // len(part) + 3)  # a multipart upload on S3

    size, sha256 = storage.write_stream("datasets/large.csv", chunks, max_bytes=1 << 30)

    whole = b"".join(chunks)
    assert (size, sha256) == (len(whole), hashlib.sha256(whole).hexdigest())
    assert hashlib.sha256(_read("datasets/large.csv")).hexdigest() == sha256
    if store == "s3":  # S3 names a multipart object's ETag "<digest>-<parts>"
        client, bucket = _s3_client(storage.get_settings())
        head = client.head_object(Bucket=bucket, Key="artifacts/datasets/large.csv")
        client.close()
        assert head["ETag"].strip('"').endswith("-3")


def test_receive_offers_a_local_file_with_the_bytes(store: str) -> None:
    with storage.receive("datasets/r.csv", [b"x\n", b"1\n"], max_bytes=100) as stored:
        assert stored.path.read_bytes() == b"x\n1\n"
        assert stored.size == 4

    assert _read("datasets/r.csv") == b"x\n1\n"


def test_write_stream_over_limit_leaves_nothing(store: str) -> None:
    with pytest.raises(errors.PayloadTooLarge, match="1 KiB") as caught:
        storage.write_stream("datasets/big.csv", [b"x" * 1000, b"x" * 1000], max_bytes=1024)

    assert caught.value.status_code == 413
    assert not storage.exists("datasets/big.csv")
    assert _everything(store) == []


def test_cut_off_upload_leaves_nothing(store: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"x" * (1 << 20)
        yield b"partial"
        raise OSError("client went away")

    with pytest.raises(OSError, match="client went away"):
        storage.write_stream("datasets/broken.csv", chunks(), max_bytes=1 << 30)

    assert not storage.exists("datasets/broken.csv")
    assert _everything(store) == []


def test_write_stream_replaces_existing_object(store: str) -> None:
    storage.write_stream("models/m.keras", [b"old"], max_bytes=100)
    storage.write_stream("models/m.keras", [b"new"], max_bytes=100)

    assert _read("models/m.keras") == b"new"


def test_local_target_stores_what_is_written(store: str) -> None:
    with storage.local_target("models/t.keras") as path:
        path.write_bytes(b"saved model")

    assert _read("models/t.keras") == b"saved model"


def test_local_target_stores_nothing_when_writing_fails(store: str) -> None:
    with pytest.raises(RuntimeError), storage.local_target("models/t.keras"):
        raise RuntimeError("the model could not be saved")

    assert not storage.exists("models/t.keras")


def test_open_read_streams_the_object_with_its_size(store: str) -> None:
    body = bytes(range(256)) * 5000
    storage.write_stream("models/big.keras", [body], max_bytes=len(body))

    handle, size = storage.open_read("models/big.keras")
    with handle:
        pieces = list(iter(lambda: handle.read(100_000), b""))

    assert size == len(body) and b"".join(pieces) == body and len(pieces) > 1


def test_local_head_of_a_remote_csv_holds_only_its_first_records(s3_store: Settings) -> None:
    header = b"name,note\n"
    records = [b'a,"two\nlines"\n', b'b,"say ""hi""\n, twice"\n', b"c,plain\n"]
    filler = b"z,filler\n" * 200_000  # 1.8 MB after them: a head reads none of it
    body = header + b"".join(records) + filler
    storage.write_stream("datasets/long.csv", [body], max_bytes=len(body))

    with storage.local_head("datasets/long.csv", 4) as path:  # the header and 3 records
        head = path.read_bytes()

    assert head == header + b"".join(records)


def test_local_head_of_a_short_remote_csv_is_the_whole_file(s3_store: Settings) -> None:
    body = b"a,b\n1,2"  # no final newline
    storage.write_stream("datasets/short.csv", [body], max_bytes=len(body))

    with storage.local_head("datasets/short.csv", 10) as path:
        assert path.read_bytes() == body


def test_local_head_of_a_local_csv_is_the_stored_file(settings: Settings) -> None:
    storage.write_stream("datasets/a.csv", [b"a\n1\n2\n"], max_bytes=100)

    with storage.local_head("datasets/a.csv", 2) as path:
        assert path == settings.artifacts_path / "datasets" / "a.csv"


def test_delete_removes_object_and_missing_key_is_fine(store: str) -> None:
    storage.write_stream("datasets/d.csv", [b"a\n1\n"], max_bytes=100)

    storage.delete("datasets/d.csv")
    storage.delete("datasets/d.csv")

    assert not storage.exists("datasets/d.csv")
    assert _everything(store) == []


def test_exists_only_for_stored_objects(store: str) -> None:
    storage.write_stream("datasets/e.csv", [b"a\n1\n"], max_bytes=100)

    assert storage.exists("datasets/e.csv")
    assert not storage.exists("datasets/other.csv")
    assert not storage.exists("datasets")  # a folder is not an object


def test_missing_object_has_no_local_file(store: str) -> None:
    with pytest.raises(FileNotFoundError), storage.local_file("models/missing.keras"):
        pass


@pytest.mark.parametrize("key", ["../outside.csv", "/etc/passwd", "datasets/../../x", "", ".."])
def test_key_outside_store_is_rejected(store: str, key: str) -> None:
    with pytest.raises(ValueError, match="outside the artifact store"):
        storage.write_stream(key, [b"x"], max_bytes=100)
    with pytest.raises(ValueError, match="outside the artifact store"):
        storage.exists(key)
    with pytest.raises(ValueError, match="outside the artifact store"):
        storage.delete(key)

    assert _everything(store) == []


def test_local_key_through_a_symlink_out_of_the_store_is_rejected(
    settings: Settings, tmp_path: Path
) -> None:
    settings.artifacts_path.mkdir(parents=True)
    (settings.artifacts_path / "datasets").symlink_to(tmp_path)

    with pytest.raises(ValueError, match="outside the artifact store"):
        storage.write_stream("datasets/a.csv", [b"x"], max_bytes=100)


def test_checkpoint_folder_round_trips_through_the_store(store: str) -> None:
    """A checkpoint written on one machine is in the folder a later attempt gets elsewhere."""
    with storage.checkpoint_folder("job1") as folder:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "epoch-3.weights.h5").write_bytes(b"weights")
        storage.upload(
            folder / "epoch-3.weights.h5", storage.checkpoint_key("job1", "epoch-3.weights.h5")
        )

    with storage.checkpoint_folder("job1") as folder:
        assert (folder / "epoch-3.weights.h5").read_bytes() == b"weights"
    assert storage.list_keys("checkpoints/job1") == ["checkpoints/job1/epoch-3.weights.h5"]

    storage.delete_checkpoint("job1")
    storage.delete_checkpoint("job1")  # none left is fine

    assert storage.list_keys("checkpoints/job1") == []
    with storage.checkpoint_folder("job1") as folder:
        assert not folder.exists() or list(folder.iterdir()) == []


def test_upload_copies_a_local_file_into_the_store(store: str, tmp_path: Path) -> None:
    source = tmp_path / "file.bin"
    source.write_bytes(b"payload")

    storage.upload(source, "models/u.keras")

    assert _read("models/u.keras") == b"payload"
    assert source.read_bytes() == b"payload"


@pytest.mark.parametrize("url", ["gs://bucket/prefix", "s3://", "s3:///prefix"])
def test_settings_refuse_unsupported_artifact_urls(url: str) -> None:
    with pytest.raises(ValidationError, match="DENDRITE_ARTIFACTS_URL"):
        Settings(artifacts_url=url)
