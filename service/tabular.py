"""Reading uploaded data files (CSV, Parquet, NPZ) and describing their columns or arrays.

Upload and training read through the same functions, so recorded dtypes match what training sees.
"""

import codecs
import csv
import math
import warnings
import zipfile
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from service import errors

# pandas' default missing-value markers, matched again after stripping ("NA " escapes pandas).
NA_TOKENS = (
    *("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN"),
    *("<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"),
)
# pandas' default text dtype, named: astype("str") would turn None (from Parquet) into "None".
TEXT = pd.StringDtype(na_value=np.nan)
MAX_VALUES = 100
NPZ_KEYS = "'x' and 'y', or 'x_train' and 'y_train' (optionally with 'x_test' and 'y_test')"
_CHUNK = 1 << 20

Column = dict[str, Any]
Array = npt.NDArray[Any]


def read_table(
    path: Path, file_format: str, nrows: int | None = None, text_columns: Collection[str] = ()
) -> pd.DataFrame:
    """A CSV or Parquet file as a frame of float, integer, boolean and string columns.

    `nrows` reads only the first rows (previews); `text_columns` are kept as strings.
    """
    frame = (
        _read_csv(path, nrows, text_columns) if file_format == "csv" else _read_parquet(path, nrows)
    )
    if nrows is None and frame.empty:
        raise errors.InvalidInput("the file has column names but no data rows", field="file")
    for name in frame.columns:
        frame[name] = _column(name, frame[name], file_format == "csv", name in text_columns)
    return frame


def _read_csv(path: Path, nrows: int | None, text_columns: Collection[str]) -> pd.DataFrame:
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            header = next((row for row in csv.reader(file) if row), None)
        if header is None:
            raise errors.InvalidInput("the CSV has no header row", field="file")
        with warnings.catch_warnings():
            # Otherwise a first row longer than the header silently loses its extra values.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(
                path,
                header=0,
                names=_column_names(header),
                index_col=False,
                skipinitialspace=True,
                dtype=dict.fromkeys(text_columns, "str"),
                nrows=nrows,
                encoding="utf-8",
                low_memory=False,
            )
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except pd.errors.ParserWarning:
        detail = "row 1 has more values than the header has column names"
        raise errors.InvalidInput(detail, field="file") from None
    except (pd.errors.ParserError, csv.Error, ValueError) as error:
        reason = str(error).removeprefix("Error tokenizing data. C error: ").strip()
        raise errors.InvalidInput(f"the CSV could not be parsed: {reason}", field="file") from None


def _not_utf8(path: Path) -> errors.InvalidInput:
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


def _read_parquet(path: Path, nrows: int | None) -> pd.DataFrame:
    try:
        file = pq.ParquetFile(path)
        if nrows is None:
            table = file.read()
        else:
            # Batches stop at row-group boundaries, so one may hold fewer than nrows rows.
            batches, count = [], 0
            for batch in file.iter_batches(batch_size=max(nrows, 1)):
                batches.append(batch)
                count += batch.num_rows
                if count >= nrows:
                    break
            table = pa.Table.from_batches(batches, schema=file.schema_arrow).slice(0, nrows)
        frame = table.to_pandas()
    except (pa.ArrowException, OSError) as error:
        raise errors.InvalidInput(
            f"the Parquet file could not be read: {error}", field="file"
        ) from None
    # A named index (DataFrame.to_parquet of an indexed frame) is data; a default one is not.
    frame = frame.reset_index(drop=frame.index.names == [None])
    frame.columns = _column_names(frame.columns)
    return frame


def _column_names(header: Iterable[object]) -> list[str]:
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


def _column(name: str, values: pd.Series, text_na: bool, keep_text: bool) -> pd.Series:
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
            return _column(name, pd.to_numeric(values).astype("float64"), text_na, keep_text)
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
        return _column(name, pd.to_numeric(text), text_na, keep_text)
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
    return [_describe_column(str(name), values) for name, values in frame.items()]


def dtype_name(dtype: Any) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    return "float" if pd.api.types.is_float_dtype(dtype) else "string"


def _describe_column(name: str, values: pd.Series) -> Column:
    dtype = dtype_name(values.dtype)
    column: Column = {"name": name, "dtype": dtype, "missing": int(values.isna().sum())}
    column["distinct"] = int(values.nunique())
    if dtype in ("float", "integer"):
        column |= {
            "min": _float(values.min()),
            "max": _float(values.max()),
            "mean": _float(values.mean()),
            "std": _float(values.std()),
        }
    else:
        counts = values.value_counts().head(MAX_VALUES)
        column["values"] = [[python_value(value), int(count)] for value, count in counts.items()]
    return column


def read_npz(path: Path) -> dict[str, Array]:
    """The arrays of an NPZ file, checked: keys, numeric dtypes, matching lengths, finite values."""
    try:
        with zipfile.ZipFile(path) as archive:
            if not any(member.endswith(".npy") for member in archive.namelist()):
                raise errors.UnsupportedMediaType(
                    "the file is a ZIP archive without numpy arrays; NPZ files are written with "
                    "numpy.savez or numpy.savez_compressed",
                    field="file",
                )
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: _load_array(npz, key) for key in _npz_keys(npz.files)}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise errors.InvalidInput(
            f"the NPZ file could not be read: {error}", field="file"
        ) from None
    _check_arrays(arrays)
    return arrays


def _npz_keys(files: list[str]) -> list[str]:
    present = set(files)
    keys = ["x_train", "y_train"] if "x_train" in present else ["x", "y"]
    if present & {"x_test", "y_test"}:
        keys += ["x_test", "y_test"]
    if present != set(keys):
        raise errors.InvalidInput(
            f"the NPZ file holds the arrays {', '.join(sorted(present))}; expected {NPZ_KEYS}",
            field="file",
        )
    return keys


def _load_array(npz: Any, key: str) -> Array:
    try:
        array = npz[key]
    except ValueError as error:
        raise errors.InvalidInput(
            f"array '{key}' could not be loaded: {error}; arrays must hold numbers "
            "(object arrays are refused because loading them can run code)",
            field=key,
        ) from None
    if not isinstance(array, np.ndarray):
        raise errors.InvalidInput(f"'{key}' in the NPZ file is not a numpy array", field=key)
    return array


def _check_arrays(arrays: dict[str, Array]) -> None:
    for key, array in arrays.items():
        accepted, what = (
            ("biuf", "numbers") if key.startswith("x") else ("biufU", "numbers or text")
        )
        if array.dtype.kind not in accepted:
            detail = f"array '{key}' has dtype {array.dtype}; it must hold {what}"
            raise errors.InvalidInput(detail, field=key)
        if array.ndim == 0 or array.size == 0:
            detail = f"array '{key}' has shape {array.shape}; it needs one entry per sample"
            raise errors.InvalidInput(detail, field=key)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            detail = (
                f"array '{key}' has NaN or infinite values; every value must be a finite number"
            )
            raise errors.InvalidInput(detail, field=key)
    keys = list(arrays)
    for x_key, y_key in zip(keys[::2], keys[1::2], strict=True):
        if len(arrays[x_key]) != len(arrays[y_key]):
            raise errors.InvalidInput(
                f"'{x_key}' has {len(arrays[x_key])} samples but '{y_key}' has "
                f"{len(arrays[y_key])}; their first dimensions must be equal",
                field=y_key,
            )
    for train, test in zip(keys[:2], keys[2:], strict=False):
        if arrays[train].shape[1:] != arrays[test].shape[1:]:
            raise errors.InvalidInput(
                f"'{test}' entries have shape {arrays[test].shape[1:]} but '{train}' entries have "
                f"shape {arrays[train].shape[1:]}; they must match",
                field=test,
            )


def describe_arrays(arrays: dict[str, Array]) -> list[Column]:
    """Per array: dtype, shape, statistics over all values, and label counts for 1-D `y` arrays."""
    columns: list[Column] = []
    for key, array in arrays.items():
        column: Column = {"name": key, "dtype": str(array.dtype), "missing": 0}
        column["shape"] = list(array.shape)
        if array.dtype.kind in "biuf":
            column |= _array_statistics(array)
        if key.startswith("y") and array.ndim == 1 and array.dtype.kind in "biuU":
            labels, counts = np.unique(array, return_counts=True)
            order = np.argsort(-counts, kind="stable")[:MAX_VALUES]
            column["distinct"] = len(labels)
            column["values"] = [[labels[i].item(), int(counts[i])] for i in order]
        columns.append(column)
    return columns


def _array_statistics(array: Array) -> Column:
    # Blockwise (Chan et al.) so a float64 copy of a large uint8 image array is never made.
    rows = array.reshape(len(array), -1)
    step = max(1, _CHUNK // max(1, rows.shape[1]))
    count, mean, squares = 0, 0.0, 0.0
    for start in range(0, len(rows), step):
        block = rows[start : start + step].astype(np.float64)
        block_mean = float(block.mean())
        delta, total = block_mean - mean, count + block.size
        squares += float(((block - block_mean) ** 2).sum()) + delta**2 * count * block.size / total
        mean += delta * block.size / total
        count = total
    std = math.sqrt(squares / (count - 1)) if count > 1 else None
    return {"min": _float(array.min()), "max": _float(array.max()), "mean": mean, "std": std}


def _float(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def python_value(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
