"""Parquet uploads checked against their limits before they fill memory: real bombs, small on disk,
huge once decoded (or expanding past the compression ratio), with the memory Arrow takes while
refusing them measured."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.core import errors
from service.formats import tabular
from service.formats.limits import RATIO_GRACE_BYTES, Limits
from tests.conftest import DATA

LIMITS = Limits(rows=10**9, columns=100, decompressed_bytes=16 << 20)
MiB = 1 << 20


# Buffers allocated from a pool may outlive the test (a kept traceback); the pool must outlive them.
_POOLS: list[pa.MemoryPool] = []


@pytest.fixture
def arrow_peak() -> Iterator[pa.MemoryPool]:
    """A memory pool that records Arrow's peak allocation while the test runs."""
    previous = pa.default_memory_pool()
    pool = pa.proxy_memory_pool(previous)
    _POOLS.append(pool)
    pa.set_memory_pool(pool)
    yield pool
    pa.set_memory_pool(previous)


def _write_row_groups(path: Path, table: pa.Table, times: int, **options: object) -> None:
    """`times` copies of `table`, one row group each: a large file written in little memory."""
    with pq.ParquetWriter(path, table.schema, **options) as writer:  # type: ignore[arg-type]
        for _ in range(times):
            writer.write_table(table)


def test_read_table_refuses_repeated_text_before_decoding_it(
    tmp_path: Path, arrow_peak: pa.MemoryPool
) -> None:
    path = tmp_path / "bomb.parquet"
    one_mib_of_text = pa.array(["x" * MiB])
    column = pa.DictionaryArray.from_arrays(pa.array(np.zeros(512, "int32")), one_mib_of_text)
    # Written without its Arrow schema, the column reads back as plain text, as from other tools.
    pq.write_table(pa.table({"a": column}), path, store_schema=False, compression="zstd")
    assert path.stat().st_size < 64 * 1024  # 512 MiB of text once decoded

    with pytest.raises(errors.PayloadTooLarge, match="decode to more than 537,") as caught:
        tabular.read_table(path, "parquet", limits=LIMITS)

    assert "DENDRITE_MAX_DECOMPRESSED_BYTES" in caught.value.detail
    assert arrow_peak.max_memory() < 8 * MiB


def test_read_table_refuses_run_length_encoded_numbers_from_the_footer(
    tmp_path: Path, arrow_peak: pa.MemoryPool
) -> None:
    path = tmp_path / "bomb.parquet"
    _write_row_groups(path, pa.table({"a": np.zeros(1 << 20)}), times=8, compression="zstd")
    assert path.stat().st_size < 64 * 1024  # 64 MiB of float64 once decoded

    with pytest.raises(errors.PayloadTooLarge, match="footer declares its data as 67,108,864"):
        tabular.read_table(path, "parquet", limits=LIMITS)

    assert arrow_peak.max_memory() < 4 * MiB


def test_read_table_refuses_rows_over_the_limit_from_the_footer(tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    _write_row_groups(path, pa.table({"a": np.zeros(1000, "int8")}), times=3)

    limits = Limits(rows=2999, columns=100, decompressed_bytes=1 << 30)
    with pytest.raises(errors.InvalidInput, match=r"3,000 rows.*DENDRITE_MAX_ROWS"):
        tabular.read_table(path, "parquet", limits=limits)


def test_read_table_refuses_columns_over_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "wide.parquet"
    pq.write_table(pa.table({f"c{i}": [1.0] for i in range(101)}), path)

    with pytest.raises(errors.InvalidInput, match=r"101 columns.*DENDRITE_MAX_COLUMNS"):
        tabular.read_table(path, "parquet", limits=LIMITS)


def test_read_table_refuses_nested_columns_before_reading_them(tmp_path: Path) -> None:
    path = tmp_path / "lists.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0], "b": [[1, 2], [3]]}), path)

    with pytest.raises(errors.InvalidInput, match="'b' holds list<") as caught:
        tabular.read_table(path, "parquet", limits=LIMITS)

    assert caught.value.field == "b"


def test_read_table_within_limits_reads_text_as_without_them(tmp_path: Path) -> None:
    path = tmp_path / "ok.parquet"
    table = pa.table({"s": ["b", "a", None, "b"], "n": [1, 2, 3, 4], "c": ["x", "y", "x", "x"]})
    pq.write_table(table.set_column(2, "c", table["c"].dictionary_encode()), path)

    limited = tabular.read_table(path, "parquet", limits=LIMITS)
    unlimited = tabular.read_table(path, "parquet")

    assert limited.equals(unlimited)
    assert limited["s"].tolist()[:2] == ["b", "a"] and limited["c"].tolist() == ["x", "y", "x", "x"]
    assert tabular.dtype_name(limited["s"].dtype) == "string"


def test_read_table_refuses_csv_over_the_row_limit(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("a\n" + "1\n" * 11)

    limits = Limits(rows=10, columns=100, decompressed_bytes=1 << 30)
    with pytest.raises(errors.InvalidInput, match="more than 10 rows"):
        tabular.read_table(path, "csv", limits=limits)


# --- compression ratio ------------------------------------------------------------------------

RATIO_LIMITS = Limits(rows=10**9, columns=100, decompressed_bytes=1 << 30, compression_ratio=100)


def test_read_table_refuses_parquet_expanding_past_the_ratio_from_the_footer(
    tmp_path: Path, arrow_peak: pa.MemoryPool
) -> None:
    path = tmp_path / "ratio.parquet"
    _write_row_groups(path, pa.table({"a": np.zeros(1 << 20)}), times=4, compression="zstd")
    assert path.stat().st_size < 64 * 1024  # 32 MiB of float64, under the absolute limit

    with pytest.raises(errors.PayloadTooLarge) as caught:
        tabular.read_table(path, "parquet", limits=RATIO_LIMITS)

    assert "DENDRITE_MAX_COMPRESSION_RATIO" in caught.value.detail
    assert f"expands from {path.stat().st_size:,} bytes to 33,554,432 bytes" in caught.value.detail
    assert caught.value.field == "file"
    assert arrow_peak.max_memory() < 4 * MiB


def test_read_table_refuses_repeated_text_past_the_ratio_while_decoding(
    tmp_path: Path, arrow_peak: pa.MemoryPool
) -> None:
    path = tmp_path / "text.parquet"
    one_mib_of_text = pa.array(["x" * MiB])
    column = pa.DictionaryArray.from_arrays(pa.array(np.zeros(32, "int32")), one_mib_of_text)
    pq.write_table(pa.table({"a": column}), path, store_schema=False, compression="zstd")

    with pytest.raises(errors.PayloadTooLarge, match="DENDRITE_MAX_COMPRESSION_RATIO"):
        tabular.read_table(path, "parquet", limits=RATIO_LIMITS)

    assert arrow_peak.max_memory() < 8 * MiB


@pytest.mark.parametrize("grace", [0, RATIO_GRACE_BYTES])
def test_read_table_accepts_real_data_as_parquet_under_the_ratio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, grace: int
) -> None:
    # 0: checked despite its small size.
    monkeypatch.setattr("service.formats.limits.RATIO_GRACE_BYTES", grace)
    path = tmp_path / "concrete.parquet"
    tabular.read_table(DATA / "concrete_data.csv", "csv").to_parquet(path)

    frame = tabular.read_table(path, "parquet", limits=RATIO_LIMITS)

    assert len(frame) == 1030 and "Strength" in frame.columns
