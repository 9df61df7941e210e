"""NPZ uploads checked against their limits from what the archive declares, before an array is
decompressed: real bombs, small on disk, huge once loaded (or expanding past the compression
ratio), with the memory taken measured; previews that decompress only the rows they show."""

import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from service.core import errors
from service.formats import npz
from service.formats.limits import RATIO_GRACE_BYTES, Limits
from tests.conftest import DATA

LIMITS = Limits(rows=10**9, columns=100, decompressed_bytes=16 << 20)
MiB = 1 << 20


@pytest.fixture
def peak() -> Iterator[list[int]]:
    """Python's and numpy's peak allocation (tracemalloc sees both) while the test runs."""
    result: list[int] = []
    tracemalloc.start()
    yield result
    tracemalloc.stop()


def _measure(peak: list[int], path: Path, limits: Limits) -> errors.DendriteError:
    tracemalloc.reset_peak()
    try:
        npz.read_npz(path, limits)
    except errors.DendriteError as error:
        peak.append(tracemalloc.get_traced_memory()[1])
        return error
    raise AssertionError("the file was read")


def test_read_npz_refuses_a_compressed_bomb_before_loading_it(
    tmp_path: Path, peak: list[int]
) -> None:
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x=np.zeros((64, MiB // 8)), y=np.zeros(64))  # 64 MiB of zeros
    assert path.stat().st_size < 256 * 1024

    error = _measure(peak, path, LIMITS)

    assert isinstance(error, errors.PayloadTooLarge)
    assert "67,109," in error.detail and "DENDRITE_MAX_DECOMPRESSED_BYTES" in error.detail
    assert peak[0] < 1 * MiB


def test_read_npz_refuses_an_array_header_declaring_more_than_the_limit(
    tmp_path: Path, peak: list[int]
) -> None:
    path = tmp_path / "header.npz"
    with zipfile.ZipFile(path, "w") as archive:  # entries small, the header's shape huge
        with archive.open("x.npy", "w") as entry:
            np.lib.format.write_array_header_1_0(
                entry, {"descr": "<f4", "fortran_order": False, "shape": (1 << 30, 4)}
            )
            entry.write(b"\0" * 64)
        archive.writestr("y.npy", b"")

    error = _measure(peak, path, LIMITS)

    assert "'x', shape [1073741824, 4]" in error.detail and "17,179,869,184" in error.detail
    assert peak[0] < 1 * MiB


def test_read_npz_refuses_samples_over_the_row_limit(tmp_path: Path) -> None:
    path = tmp_path / "rows.npz"
    np.savez(path, x=np.zeros((11, 2)), y=np.zeros(11))

    with pytest.raises(errors.InvalidInput, match=r"11 samples in 'x'.*DENDRITE_MAX_ROWS"):
        npz.read_npz(path, Limits(rows=10, columns=1, decompressed_bytes=MiB))


def test_read_npz_refuses_many_entries_from_the_zip64_end_record(tmp_path: Path) -> None:
    path = tmp_path / "entries.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(0x10000):  # past 65535 entries the count is in the zip64 record
            archive.writestr(f"{index}.npy", b"")

    with pytest.raises(errors.InvalidInput, match="65,536 entries"):
        npz.read_npz(path, LIMITS)


def test_read_npz_within_limits_reads_the_arrays(tmp_path: Path) -> None:
    path = tmp_path / "ok.npz"
    np.savez_compressed(path, x=np.arange(12.0).reshape(6, 2), y=np.arange(6))

    arrays = npz.read_npz(path, Limits(rows=6, columns=1, decompressed_bytes=96 + 48 + 256))

    assert arrays["x"].shape == (6, 2) and arrays["y"].tolist() == [0, 1, 2, 3, 4, 5]


# --- compression ratio ------------------------------------------------------------------------


def test_read_npz_refuses_a_file_expanding_past_the_ratio_before_loading_it(
    tmp_path: Path, peak: list[int]
) -> None:
    path = tmp_path / "ratio.npz"
    np.savez_compressed(path, x=np.zeros((16, MiB // 8)), y=np.zeros(16))  # 16 MiB of zeros
    limits = Limits(rows=10**9, columns=100, decompressed_bytes=1 << 30, compression_ratio=100)

    error = _measure(peak, path, limits)

    assert isinstance(error, errors.PayloadTooLarge) and error.field == "file"
    assert "DENDRITE_MAX_COMPRESSION_RATIO" in error.detail and "at most 100 times" in error.detail
    assert f"expands from {path.stat().st_size:,} bytes to 16,777," in error.detail
    assert peak[0] < 1 * MiB


@pytest.mark.parametrize("grace", [0, RATIO_GRACE_BYTES])
def test_read_npz_accepts_real_images_under_the_ratio(
    monkeypatch: pytest.MonkeyPatch, grace: int
) -> None:
    # 0: checked despite its small size.
    monkeypatch.setattr("service.formats.limits.RATIO_GRACE_BYTES", grace)
    limits = Limits(rows=10**9, columns=100, decompressed_bytes=1 << 30, compression_ratio=100)

    arrays = npz.read_npz(DATA / "mnist_small.npz", limits)

    assert arrays["x_train"].shape[1:] == (28, 28)


def test_read_npz_does_not_check_the_ratio_of_small_files(tmp_path: Path) -> None:
    path = tmp_path / "small.npz"
    np.savez_compressed(path, x=np.zeros((64, 1000)), y=np.zeros(64))  # 512 KB, 1 KB compressed

    limits = Limits(rows=10**9, columns=100, decompressed_bytes=1 << 30, compression_ratio=100)
    assert npz.read_npz(path, limits)["x"].shape == (64, 1000)


# --- previews ---------------------------------------------------------------------------------


def _zero_npz(path: Path, rows: int, width: int) -> None:
    """A compressed NPZ of `rows` x `width` float64 zeros written piece by piece, with a first
    row of ones and labels 0..rows-1 (int32)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as entry:
            header = {"descr": "<f8", "fortran_order": False, "shape": (rows, width)}
            np.lib.format.write_array_header_1_0(entry, header)
            entry.write(np.ones(width).tobytes())
            for start in range(1, rows, 64):
                entry.write(bytes(width * 8 * min(64, rows - start)))
        with archive.open("y.npy", "w") as entry:
            np.lib.format.write_array(entry, np.arange(rows, dtype="<i4"))


def test_head_decompresses_only_the_rows_it_returns(tmp_path: Path, peak: list[int]) -> None:
    path = tmp_path / "wide.npz"
    _zero_npz(path, rows=16_384, width=1024)  # 128 MiB of float64 once decompressed
    assert path.stat().st_size < MiB

    tracemalloc.reset_peak()
    arrays = npz.head(path, 2)
    taken = tracemalloc.get_traced_memory()[1]

    assert arrays["x"].tolist() == [[1.0] * 1024, [0.0] * 1024]
    assert arrays["y"].tolist() == [0, 1]
    assert taken < 2 * MiB  # the whole array took 128 MiB before


def test_head_reads_fortran_ordered_arrays_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "fortran.npz"
    x = np.asfortranarray(np.arange(5 * 3 * 2, dtype="float32").reshape(5, 3, 2))
    y = np.asfortranarray(np.array(["a", "b", "c", "d", "e"]))
    np.savez(path, x=x, y=y)

    arrays = npz.head(path, 2)

    assert np.array_equal(arrays["x"], x[:2]) and arrays["y"].tolist() == ["a", "b"]
    assert np.array_equal(npz.head(path, 10)["x"], x)


def test_head_of_the_train_arrays_matches_the_loaded_arrays() -> None:
    arrays = npz.head(DATA / "mnist_small.npz", 3)

    with np.load(DATA / "mnist_small.npz") as whole:
        assert list(arrays) == ["x_train", "y_train"]
        assert np.array_equal(arrays["x_train"], whole["x_train"][:3])
        assert np.array_equal(arrays["y_train"], whole["y_train"][:3])


def test_head_returns_fewer_rows_when_they_hold_many_values(tmp_path: Path) -> None:
    path = tmp_path / "rows.npz"
    width = npz.MAX_PREVIEW_VALUES // 4
    np.savez_compressed(path, x=np.zeros((10, width), "uint8"), y=np.zeros(10))

    assert len(npz.head(path, 10)["x"]) == 4


def test_head_refuses_samples_too_large_to_preview(tmp_path: Path) -> None:
    path = tmp_path / "huge.npz"
    np.savez_compressed(path, x=np.zeros((2, npz.MAX_PREVIEW_VALUES + 1), "uint8"), y=[0, 1])

    with pytest.raises(errors.InvalidInput, match="1,048,577 values") as caught:
        npz.head(path, 1)

    assert caught.value.field == "x"
