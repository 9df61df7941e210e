"""Reading uploaded NPZ files (numpy arrays) and describing their arrays.

An upload is checked against its limits from what the archive declares (its entry count, each
entry's uncompressed size and their ratio to the file's size, each array header's shape and dtype)
before any array is decompressed. A preview decompresses only the rows it shows.
"""

import math
import struct
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np

from service.core import errors
from service.formats.limits import Limits
from service.formats.tabular import MAX_VALUES, Array, Column, finite_float

NPZ_KEYS = "'x' and 'y', or 'x_train' and 'y_train' (optionally with 'x_test' and 'y_test')"
_CHUNK = 1 << 20
# An NPZ dataset holds 2 or 4 arrays. More entries are refused before the ZIP directory is read:
# each costs memory to list, and a 1 GiB archive can hold millions of them.
MAX_ENTRIES = 16
# A preview shows at most this many values of each array (rows are dropped to stay under it).
MAX_PREVIEW_VALUES = 1 << 20
_END_OF_DIRECTORY = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"


def read_npz(path: Path, limits: Limits | None = None) -> dict[str, Array]:
    """The arrays of an NPZ file, checked: keys, numeric dtypes, matching lengths, finite values;
    with `limits`, the sizes the archive declares are checked before anything is decompressed."""
    try:
        if limits is not None:
            _check_entry_count(path)
        with zipfile.ZipFile(path) as archive:
            if not any(member.endswith(".npy") for member in archive.namelist()):
                raise errors.UnsupportedMediaType(
                    "the file is a ZIP archive without numpy arrays; NPZ files are written with "
                    "numpy.savez or numpy.savez_compressed",
                    field="file",
                )
            if limits is not None:
                _check_declared_sizes(archive, limits, path.stat().st_size)
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: _load_array(npz, key) for key in _npz_keys(npz.files)}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise errors.InvalidInput(
            f"the NPZ file could not be read: {error}", field="file"
        ) from None
    _check_arrays(arrays)
    return arrays


def _check_entry_count(path: Path) -> None:
    """Read the entry count from the ZIP's end-of-directory record (zip64 too), not the listing."""
    with path.open("rb") as file:
        size = file.seek(0, 2)
        tail_start = max(0, size - (1 << 16) - 22)  # the record, then a comment of < 64 KiB
        file.seek(tail_start)
        tail = file.read()
        at = tail.rfind(_END_OF_DIRECTORY)
        if at < 0 or len(tail) < at + 22:
            return  # not a ZIP archive: zipfile says so in its own words
        (entries,) = struct.unpack_from("<H", tail, at + 10)
        locator = at - 20
        if entries == 0xFFFF and locator >= 0 and tail[locator : locator + 4] == _ZIP64_LOCATOR:
            (offset,) = struct.unpack_from("<Q", tail, locator + 8)
            file.seek(offset)
            record = file.read(56)
            if len(record) == 56:
                (entries,) = struct.unpack_from("<Q", record, 32)
    if entries > MAX_ENTRIES:
        raise errors.InvalidInput(
            f"the NPZ file holds {entries:,} entries; an NPZ dataset holds the arrays {NPZ_KEYS}",
            field="file",
        )


def _check_declared_sizes(archive: zipfile.ZipFile, limits: Limits, file_size: int) -> None:
    """Each entry's uncompressed size and each array's shape x item size, against the limits.

    zipfile stops at an entry's declared size and numpy allocates what the header declares, so
    these bound what loading can take."""
    members = archive.infolist()
    declared = sum(member.file_size for member in members)
    if declared > limits.decompressed_bytes:
        raise limits.too_large("the NPZ file's entries declare", declared)
    # zipfile stops at each entry's declared size, so this bounds what the file can expand to.
    limits.check_ratio("NPZ", declared, file_size)
    total = 0
    for member in members:
        if not member.filename.endswith(".npy"):
            continue
        name = member.filename.removesuffix(".npy")
        with archive.open(member) as entry:
            shape, _, dtype = _read_header(entry)
        total += math.prod(shape) * dtype.itemsize
        if total > limits.decompressed_bytes:
            what = f"the NPZ file's arrays (up to '{name}', shape {list(shape)}) take"
            raise limits.too_large(what, total)
        if name.startswith("x") and shape and shape[0] > limits.rows:
            raise limits.too_many_rows(f"{shape[0]:,}", f"samples in '{name}'")


def _read_header(entry: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """An .npy entry's shape, Fortran order and dtype; the entry is left at the array's data."""
    version = np.lib.format.read_magic(entry)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(entry)
    return np.lib.format.read_array_header_2_0(entry)


def head(path: Path, limit: int) -> dict[str, Array]:
    """The first `limit` samples of the training arrays ('x' and 'y', or 'x_train' and 'y_train').

    Only the bytes of those rows are decompressed (each entry is streamed), so what a preview takes
    depends on what it shows, not on the arrays' sizes. Fewer rows come back when they would hold
    more than MAX_PREVIEW_VALUES values.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            keys = _npz_keys([n.removesuffix(".npy") for n in archive.namelist()])[:2]
            headers = {}
            for key in keys:
                with archive.open(f"{key}.npy") as entry:
                    headers[key] = _read_header(entry)
            rows = min(limit, *(_preview_rows(key, headers[key]) for key in keys))
            arrays = {}
            for key in keys:
                with archive.open(f"{key}.npy") as entry:
                    shape, fortran_order, dtype = _read_header(entry)
                    arrays[key] = _read_rows(entry, shape, fortran_order, dtype, rows)
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, ValueError) as error:
        raise errors.InvalidInput(
            f"the NPZ file could not be read: {error}", field="file"
        ) from None
    return arrays


def _preview_rows(key: str, header: tuple[tuple[int, ...], bool, np.dtype[Any]]) -> int:
    shape, _, dtype = header
    if dtype.hasobject or not shape:
        detail = f"array '{key}' holds Python objects or a single value; it cannot be previewed"
        raise errors.InvalidInput(detail, field=key)
    per_row = math.prod(shape[1:])
    if per_row > MAX_PREVIEW_VALUES:
        raise errors.InvalidInput(
            f"each sample of '{key}' holds {per_row:,} values, more than the "
            f"{MAX_PREVIEW_VALUES:,} a preview shows; read the arrays from the file itself",
            field=key,
        )
    return min(shape[0], MAX_PREVIEW_VALUES // max(1, per_row))


def _read_rows(
    entry: IO[bytes], shape: tuple[int, ...], fortran_order: bool, dtype: np.dtype[Any], rows: int
) -> Array:
    """The first `rows` rows of the array whose data `entry` is positioned at, read in order."""
    wanted = (rows, *shape[1:])
    if not fortran_order:  # the first rows are the first bytes
        data = _read_exactly(entry, math.prod(wanted) * dtype.itemsize)
        return np.frombuffer(data, dtype=dtype).reshape(wanted).copy()
    # Fortran order: row i of column j is value i + j * shape[0]; stream the whole entry, keeping
    # only the wanted values, one bounded chunk at a time.
    kept, position, total = [], 0, math.prod(shape)
    step = max(1, _CHUNK // dtype.itemsize)
    while position < total:
        count = min(step, total - position)
        chunk = np.frombuffer(_read_exactly(entry, count * dtype.itemsize), dtype=dtype)
        index = np.arange(position, position + count)
        kept.append(chunk[index % shape[0] < rows])
        position += count
    values = np.concatenate(kept) if kept else np.empty(0, dtype=dtype)
    return values.reshape(wanted, order="F")


def _read_exactly(entry: IO[bytes], size: int) -> bytes:
    data = entry.read(size)
    if len(data) != size:
        raise EOFError(f"an array ends after {len(data):,} of its {size:,} bytes")
    return data


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
        detail = f"array '{key}' could not be loaded: {error}"
        if "allow_pickle" in str(error):
            detail = (
                f"array '{key}' holds Python objects; arrays must hold numbers (object arrays are "
                "refused because loading them can run code)"
            )
        raise errors.InvalidInput(detail, field=key) from None
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
