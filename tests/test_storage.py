import hashlib
from collections.abc import Iterator

import pytest

from service import errors, storage
from service.config import Settings


def test_write_stream_returns_size_and_sha256(settings: Settings) -> None:
    size, sha256 = storage.write_stream("datasets/a.csv", [b"a,b\n", b"1,2\n"], max_bytes=100)

    assert (size, sha256) == (8, hashlib.sha256(b"a,b\n1,2\n").hexdigest())
    assert storage.path("datasets/a.csv").read_bytes() == b"a,b\n1,2\n"
    assert storage.path("datasets/a.csv").is_relative_to(settings.artifacts_path)


def test_write_stream_over_limit_leaves_no_file(settings: Settings) -> None:
    with pytest.raises(errors.PayloadTooLarge, match="1 KiB") as caught:
        storage.write_stream("datasets/big.csv", [b"x" * 1000, b"x" * 1000], max_bytes=1024)

    assert caught.value.status_code == 413
    assert not storage.exists("datasets/big.csv")
    assert list((settings.artifacts_path / "datasets").iterdir()) == []


def test_write_stream_failing_source_leaves_no_file(settings: Settings) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"partial"
        raise OSError("client went away")

    with pytest.raises(OSError, match="client went away"):
        storage.write_stream("datasets/broken.csv", chunks(), max_bytes=100)

    assert list((settings.artifacts_path / "datasets").iterdir()) == []


def test_write_stream_replaces_existing_file() -> None:
    storage.write_stream("models/m.keras", [b"old"], max_bytes=100)
    storage.write_stream("models/m.keras", [b"new"], max_bytes=100)

    assert storage.path("models/m.keras").read_bytes() == b"new"


def test_delete_missing_key_is_fine() -> None:
    storage.write_stream("datasets/d.csv", [b"a\n1\n"], max_bytes=100)

    storage.delete("datasets/d.csv")
    storage.delete("datasets/d.csv")

    assert not storage.exists("datasets/d.csv")


@pytest.mark.parametrize("key", ["../outside.csv", "/etc/passwd", "datasets/../../x", ""])
def test_path_rejects_key_outside_store(key: str) -> None:
    with pytest.raises(ValueError, match="outside the artifact store"):
        storage.path(key)
