"""Reading Parquet files into Arrow, with an upload's limits checked before memory fills.

The footer's counts, column types and sizes (and their ratio to the file's size) are checked
before any page is decompressed. Text is read dictionary encoded and counted as if decoded, batch
by batch: a few bytes of dictionary indices (or run-length encoded numbers) can stand for
gigabytes.
"""

from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from service.core import errors
from service.formats.limits import Limits

BATCH_ROWS = 1 << 16


def read_table(path: Path | IO[bytes], nrows: int | None, limits: Limits | None) -> pa.Table:
    """The file (or its first `nrows` rows) as an Arrow table with the file's own schema."""
    schema = pq.read_schema(path)
    text = [field.name for field in schema if _is_text(field.type)]
    file = pq.ParquetFile(path, read_dictionary=text)
    stored = _file_size(path)
    if limits is not None:
        _check_footer(file, limits, stored)
    # Batches stop at row-group boundaries, so one may hold fewer than nrows rows.
    batches, count, size = [], 0, 0
    for batch in file.iter_batches(batch_size=max(nrows or BATCH_ROWS, 1)):
        batches.append(batch)
        count += batch.num_rows
        size += _decoded_bytes(batch)
        if limits is not None:
            if size > limits.decompressed_bytes:
                raise limits.too_large("the Parquet file's data decode to more than", size)
            limits.check_ratio("Parquet", size, stored)
        if nrows is not None and count >= nrows:
            break
    table = pa.Table.from_batches(batches, schema=file.schema_arrow).cast(schema)
    return table if nrows is None else table.slice(0, nrows)


def _file_size(path: Path | IO[bytes]) -> int:
    if isinstance(path, Path):
        return path.stat().st_size
    position = path.tell()
    size = path.seek(0, 2)
    path.seek(position)
    return size


def _check_footer(file: pq.ParquetFile, limits: Limits, file_size: int) -> None:
    metadata, schema = file.metadata, file.schema_arrow
    limits.check_columns(len(schema))
    for field in schema:
        # A nested value can hold any number of elements per row: no row count bounds it.
        if pa.types.is_nested(field.type):
            raise errors.InvalidInput(
                f"column '{field.name}' holds {field.type} values, which cannot be trained on; "
                "store numbers or text, one value per cell",
                field=field.name,
            )
    if metadata.num_rows > limits.rows:
        raise limits.too_many_rows(f"{metadata.num_rows:,}")
    # Pages may be run-length or dictionary encoded, so the uncompressed sizes are a floor; the
    # fixed-width columns' decoded size is exact.
    stored = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    fixed = metadata.num_rows * sum(
        max(1, field.type.bit_width // 8)
        for field in schema
        if pa.types.is_primitive(field.type) or pa.types.is_decimal(field.type)
    )
    if max(stored, fixed) > limits.decompressed_bytes:
        raise limits.too_large("the Parquet file's footer declares its data as", max(stored, fixed))
    limits.check_ratio("Parquet", max(stored, fixed), file_size)


def _is_text(data_type: pa.DataType) -> bool:
    checks = (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary)
    return any(check(data_type) for check in (*checks, pa.types.is_large_binary))


def _decoded_bytes(batch: pa.RecordBatch) -> int:
    """What a batch takes once its dictionary-encoded text is decoded, without decoding it."""
    size = 0
    for column in batch.columns:
        if isinstance(column, pa.DictionaryArray) and _is_text(column.dictionary.type):
            lengths = pc.binary_length(column.dictionary)
            size += int(pc.sum(pc.take(lengths, column.indices)).as_py() or 0) + column.nbytes
        else:
            size += column.nbytes
    return size
