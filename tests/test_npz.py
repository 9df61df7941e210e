"""NPZ uploads checked against their limits from what the archive declares, before an array is
decompressed: real bombs, small on disk, huge once loaded, with the memory taken measured."""

import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from service import errors, npz
from service.tabular import Limits

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
