"""Reading uploaded NPZ files (numpy arrays) and describing their arrays."""

import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from service import errors
from service.tabular import MAX_VALUES, Array, Column, finite_float

NPZ_KEYS = "'x' and 'y', or 'x_train' and 'y_train' (optionally with 'x_test' and 'y_test')"
_CHUNK = 1 << 20


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
    return {
        "min": finite_float(array.min()),
        "max": finite_float(array.max()),
        "mean": mean,
        "std": std,
    }
