"""Reading uploaded tables (CSV, Parquet) and describing their columns.

Upload and training read through the same functions, so recorded dtypes match what training sees.
"""

import codecs
import csv
import math
import warnings
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from service.core import errors
from service.formats import parquet
from service.formats.limits import Limits

# pandas' default missing-value markers, matched again after stripping ("NA " escapes pandas).
NA_TOKENS = (
    *("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN"),
    *("<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"),
)
# pandas' default text dtype, named: astype("str") would turn None (from Parquet) into "None".
TEXT = pd.StringDtype(na_value=np.nan)
MAX_VALUES = 100
_CHUNK = 1 << 20

Column = dict[str, Any]
Array = npt.NDArray[Any]


def read_table(
    path: Path | IO[bytes],
    file_format: str,
    nrows: int | None = None,
    text_columns: Collection[str] = (),
    limits: Limits | None = None,
) -> pd.DataFrame:
    """A CSV or Parquet file as a frame of float, integer, boolean and string columns.

    `nrows` reads only the first rows (previews); `text_columns` are kept as strings; `limits`
    refuses an upload over them (a 4xx) before it fills memory.
    """
    if file_format == "csv":
        if not isinstance(path, Path):
            raise TypeError("a CSV is read from a path")
        frame = _read_csv(path, nrows, text_columns, limits)
    else:  # Parquet, from a path or an open binary file
        frame = _read_parquet(path, nrows, limits)
    if nrows is None and frame.empty:
        raise errors.InvalidInput("the file has column names but no data rows", field="file")
    for name in frame.columns:
        frame[name] = typed_column(name, frame[name], file_format == "csv", name in text_columns)
    return frame


def _read_csv(
    path: Path, nrows: int | None, text_columns: Collection[str], limits: Limits | None
) -> pd.DataFrame:
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            header = next((row for row in csv.reader(file) if row), None)
        if header is None:
            raise errors.InvalidInput("the CSV has no header row", field="file")
        if limits is not None:
            limits.check_columns(len(header))
            nrows = limits.rows + 1  # one more than allowed tells that there are too many
        with warnings.catch_warnings():
            # Otherwise a first row longer than the header silently loses its extra values.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                path,
                dtype=dict.fromkeys(text_columns, "str"),
                nrows=nrows,
                low_memory=False,
                **csv_options(column_names(header)),
            )
        if limits is not None and len(frame) > limits.rows:
            raise limits.too_many_rows(f"more than {limits.rows:,}")
        return frame
    except UnicodeDecodeError:
        raise not_utf8_error(path) from None
    except pd.errors.ParserWarning:
        detail = "row 1 has more values than the header has column names"
        raise errors.InvalidInput(detail, field="file") from None
    except (pd.errors.ParserError, csv.Error, ValueError) as error:
        reason = str(error).removeprefix("Error tokenizing data. C error: ").strip()
        raise errors.InvalidInput(f"the CSV could not be parsed: {reason}", field="file") from None


def csv_options(names: list[str]) -> dict[str, Any]:
    """The `pandas.read_csv` arguments of every CSV read: whole, in chunks or column by column."""
    return {
        "header": 0,
        "names": names,
        "index_col": False,
        "skipinitialspace": True,
        "encoding": "utf-8",
    }


def not_utf8_error(path: Path) -> errors.InvalidInput:
    """The error for a CSV that is not UTF-8, naming the line of its first bad byte."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(_CHUNK), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as error:
                line += error.object[: error.start].count(b"\n")
                byte = error.object[error.start]
                return errors.InvalidInput(
                    f"the CSV must be UTF-8 text, but line {line} has the byte 0x{byte:02x}, "
                    "which is not UTF-8; save the file as 'CSV UTF-8'",
                    field="file",
                )
            line += chunk.count(b"\n")
    return errors.InvalidInput("the CSV must be UTF-8 text; save it as 'CSV UTF-8'", field="file")


def _read_parquet(path: Path | IO[bytes], nrows: int | None, limits: Limits | None) -> pd.DataFrame:
    try:
        frame = parquet.read_table(path, nrows, limits).to_pandas()
    except (pa.ArrowException, OSError) as error:
        raise errors.InvalidInput(
            f"the Parquet file could not be read: {error}", field="file"
        ) from None
    # A named index (DataFrame.to_parquet of an indexed frame) is data; a default one is not.
    frame = frame.reset_index(drop=frame.index.names == [None])
    frame.columns = column_names(frame.columns)
    return frame


def column_names(header: Iterable[object]) -> list[str]:
    """A header's column names, stripped; an empty or repeated name is refused."""
    names: dict[str, None] = {}
    for number, raw in enumerate(header, start=1):
        name = str(raw).strip()
        if not name:
            raise errors.InvalidInput(
                f"column {number} has no name; name every column in the header (an unnamed first "
                "column is often a row index: save with DataFrame.to_csv(index=False))",
                field="file",
            )
        if name in names:
            detail = f"the column name '{name}' appears twice; column names must be unique"
            raise errors.InvalidInput(detail, field=name)
        names[name] = None
    return list(names)


def typed_column(name: str, values: pd.Series, text_na: bool, keep_text: bool) -> pd.Series:
    """A column as read, as float, integer, boolean or string values; infinities and numbers
    mixed with text are refused. `text_na`: pandas' missing-value markers (NA_TOKENS) in text
    mean missing, as in a CSV; `keep_text`: text stays text even where it reads as numbers."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object)
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return _boolean(values)
    if pd.api.types.is_integer_dtype(dtype):
        if values.isna().any():
            return values.astype("float64")
        return values.astype(getattr(dtype, "numpy_dtype", dtype))
    if pd.api.types.is_float_dtype(dtype):
        return _finite(name, values.astype("float64"))
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        if kind == "string":
            return _text(name, values, text_na, keep_text)
        if kind == "boolean":
            return _boolean(values)
        if kind in ("empty", "integer", "floating", "mixed-integer-float", "decimal"):
            return typed_column(name, pd.to_numeric(values).astype("float64"), text_na, keep_text)
    raise errors.InvalidInput(
        f"column '{name}' holds {kind} values ({dtype}), which cannot be trained on; "
        "store them as numbers or text",
        field=name,
    )


def _boolean(values: pd.Series) -> pd.Series:
    values = values.astype("boolean")
    return values if values.isna().any() else values.astype(bool)


def _finite(name: str, values: pd.Series) -> pd.Series:
    infinite = np.isinf(values.to_numpy())
    if infinite.any():
        row = int(infinite.argmax())
        raise errors.InvalidInput(
            f"column '{name}' has an infinite value ({values.iloc[row]}) in row {row + 1}; "
            "use a finite number or leave the cell blank (blank cells are read as missing)",
            field=name,
        )
    return values


def _text(name: str, values: pd.Series, text_na: bool, keep_text: bool) -> pd.Series:
    text = values.astype(TEXT).str.strip()
    text = text.mask(text.isin(NA_TOKENS) if text_na else text.eq(""))
    # Classify distinct values only: parsing every cell of a long text column is slow.
    counts = text.value_counts()
    if keep_text or counts.empty:
        return text
    distinct = pd.Series(counts.index, dtype=TEXT)
    lowered = distinct.str.lower()
    if lowered.isin(["true", "false"]).all():
        return _boolean(text.str.lower().map({"true": True, "false": False}))
    is_text = pd.to_numeric(distinct, errors="coerce").isna().to_numpy()
    if not is_text.any():
        return typed_column(name, pd.to_numeric(text), text_na, keep_text)
    text_count = int(counts.to_numpy()[is_text].sum())
    if text_count >= counts.sum() / 2:
        return text
    row = int(text.isin(distinct[is_text]).to_numpy().argmax())
    raise errors.InvalidInput(
        f"column '{name}' holds numbers, but row {row + 1} has the text '{text.iloc[row]}'"
        + (f" ({text_count - 1} more rows have text)" if text_count > 1 else "")
        + "; fix the value or leave the cell blank (blank cells are read as missing)",
        field=name,
    )


def describe(frame: pd.DataFrame) -> list[Column]:
    """Per column: dtype, missing and distinct counts, numeric statistics or value counts."""
    return [describe_column(str(name), values) for name, values in frame.items()]


def dtype_name(dtype: Any) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    return "float" if pd.api.types.is_float_dtype(dtype) else "string"


def describe_column(name: str, values: pd.Series) -> Column:
    """One column's dtype, missing and distinct counts, numeric statistics or value counts."""
    dtype = dtype_name(values.dtype)
    column: Column = {"name": name, "dtype": dtype, "missing": int(values.isna().sum())}
    column["distinct"] = int(values.nunique())
    if dtype in ("float", "integer"):
        column |= {
            "min": finite_float(values.min()),
            "max": finite_float(values.max()),
            "mean": finite_float(values.mean()),
            "std": finite_float(values.std()),
        }
    else:
        counts = values.value_counts().head(MAX_VALUES)
        column["values"] = [[python_value(value), int(count)] for value, count in counts.items()]
    return column


def finite_float(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def python_value(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
