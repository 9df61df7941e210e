"""The schema and statistics of a large CSV upload, read in chunks: what
`tabular.describe(tabular.read_table(path, "csv", limits=...))` gives, without the whole table in
memory.

A chunk's numeric columns go to a scratch file each; then each column is read back alone and
described by the same code as a small upload, so dtypes, statistics and errors agree. A column
that is not numeric in some chunk (text, booleans) is read again by itself, whole, as the
whole-table read would have parsed it. Memory holds one chunk, or one column, at a time.
"""

import csv
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from service.core import errors
from service.formats import tabular
from service.formats.limits import Limits

CHUNK_ROWS = 100_000
# Smaller files are read whole: faster, and their size is no concern.
STREAM_ABOVE_BYTES = 32 << 20


def describe_file(path: Path, file_format: str, limits: Limits) -> tuple[int, list[tabular.Column]]:
    """Rows and column descriptions of an upload; large CSVs in chunks."""
    if file_format == "csv" and path.stat().st_size > STREAM_ABOVE_BYTES:
        return describe_csv(path, limits)
    frame = tabular.read_table(path, file_format, limits=limits)
    return len(frame), tabular.describe(frame)


def describe_csv(path: Path, limits: Limits) -> tuple[int, list[tabular.Column]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            header = next((row for row in csv.reader(file) if row), None)
        if header is None:
            raise errors.InvalidInput("the CSV has no header row", field="file")
        limits.check_columns(len(header))
        names = tabular.column_names(header)
        with tempfile.TemporaryDirectory(prefix="dendrite-csv-") as scratch:
            rows, spilled = _spill(path, names, limits, Path(scratch))
            if rows == 0:
                raise errors.InvalidInput(
                    "the file has column names but no data rows", field="file"
                )
            return rows, [
                _describe(path, names, index, rows, spilled.get(index))
                for index in range(len(names))
            ]
    except UnicodeDecodeError:
        raise tabular.not_utf8_error(path) from None
    except pd.errors.ParserWarning:
        detail = "row 1 has more values than the header has column names"
        raise errors.InvalidInput(detail, field="file") from None
    except (pd.errors.ParserError, csv.Error, ValueError) as error:
        if isinstance(error, errors.DendriteError):
            raise
        reason = str(error).removeprefix("Error tokenizing data. C error: ").strip()
        raise errors.InvalidInput(f"the CSV could not be parsed: {reason}", field="file") from None


Spilled = list[tuple[Path, np.dtype[np.generic]]]


def _spill(
    path: Path, names: list[str], limits: Limits, scratch: Path
) -> tuple[int, dict[int, Spilled]]:
    """Rows, and for each column numeric in every chunk, the files its chunks were saved to."""
    spilled: dict[int, Spilled] = {index: [] for index in range(len(names))}
    rows = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        reader = pd.read_csv(path, chunksize=CHUNK_ROWS, **tabular.csv_options(names))
        with reader:
            for chunk in reader:
                rows += len(chunk)
                if rows > limits.rows:
                    raise limits.too_many_rows(f"more than {limits.rows:,}")
                for index in list(spilled):
                    values = chunk.iloc[:, index]
                    dtype = values.dtype
                    numeric = pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_float_dtype(
                        dtype
                    )
                    if not numeric or pd.api.types.is_bool_dtype(dtype):
                        for file, _ in spilled.pop(index):
                            file.unlink()
                        continue
                    file = scratch / f"{index}-{len(spilled[index])}.npy"
                    array = values.to_numpy()
                    np.save(file, array)
                    spilled[index].append((file, array.dtype))
    return rows, spilled


def _describe(
    path: Path, names: list[str], index: int, rows: int, files: Spilled | None
) -> tabular.Column:
    name = names[index]
    if files is None:  # text, booleans or mixed in some chunk: this column alone, whole
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            options = tabular.csv_options(names)
            frame = pd.read_csv(path, usecols=[index], low_memory=False, **options)
        values = frame.iloc[:, 0]
        del frame
    else:
        # int64 where every chunk is int64; float64 (as the whole read gives) otherwise.
        column = np.empty(rows, dtype=np.result_type(*(dtype for _, dtype in files)))
        start = 0
        for file, _ in files:
            part = np.load(file)
            column[start : start + len(part)] = part
            start += len(part)
            file.unlink()
        values = pd.Series(column, name=name)
    # The checks and dtype of a small upload.
    values = tabular.typed_column(name, values, True, False)
    if files is not None and column.dtype == np.float64 and not values.isna().any():
        del values
        return _describe_floats(name, column)
    return tabular.describe_column(name, values)


def _describe_floats(name: str, values: np.ndarray) -> tabular.Column:
    """`tabular.describe_column` of a float column without missing values, to the bit, with one
    temporary column where pandas makes three: its two-pass variance (mean, then the sum of
    squared deviations) computed in place, then the distinct values counted on the sorted
    column (the column is this function's own)."""
    count = np.float64(len(values))
    mean = values.sum(dtype=np.float64) / count
    deviations = np.subtract(mean, values)
    np.square(deviations, out=deviations)
    std = np.sqrt(deviations.sum(dtype=np.float64) / (count - 1)) if len(values) > 1 else np.nan
    del deviations
    low, high = values.min(), values.max()
    values.sort()
    distinct = 1 + int(np.count_nonzero(values[1:] != values[:-1]))
    return {
        "name": name,
        "dtype": "float",
        "missing": 0,
        "distinct": distinct,
        "min": tabular.finite_float(low),
        "max": tabular.finite_float(high),
        "mean": tabular.finite_float(mean),
        "std": tabular.finite_float(std),
    }
