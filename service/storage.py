"""The artifact store: files under `artifacts_path`, named by keys such as `datasets/<id>.csv`.

Keys are built from ids only, never from user file names. (A later issue swaps this for fsspec.)
"""

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from service import errors
from service.config import get_settings


def _resolve(key: str) -> Path:
    root = get_settings().artifacts_path
    target = (root / key).resolve()
    if target == root or not target.is_relative_to(root):
        raise ValueError(f"storage key {key!r} points outside the artifact store")
    return target


def path(key: str) -> Path:
    """The local path of `key`, with its parent folders created."""
    target = _resolve(key)
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def write_stream(key: str, chunks: Iterable[bytes], max_bytes: int) -> tuple[int, str]:
    """Write `chunks` to `key` atomically; return (size in bytes, sha256 hex digest)."""
    target = path(key)
    digest = hashlib.sha256()
    size = 0
    handle, temp_name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".part"
    )
    try:
        with os.fdopen(handle, "wb") as temp:
            for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise errors.PayloadTooLarge(
                        f"the file is larger than the upload limit of {_human(max_bytes)} "
                        f"({max_bytes} bytes, setting DENDRITE_MAX_UPLOAD_BYTES)",
                        field="file",
                    )
                digest.update(chunk)
                temp.write(chunk)
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return size, digest.hexdigest()


def delete(key: str) -> None:
    _resolve(key).unlink(missing_ok=True)


def exists(key: str) -> bool:
    return _resolve(key).is_file()


def checkpoint_folder(job_id: str) -> Path:
    """Where a running job keeps its training checkpoint (written by the worker, one per job)."""
    return path(f"checkpoints/{job_id}")


def delete_checkpoint(job_id: str) -> None:
    shutil.rmtree(_resolve(f"checkpoints/{job_id}"), ignore_errors=True)


def _human(size: int) -> str:
    value, unit = float(size), "bytes"
    for larger in ("KiB", "MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{value:.4g} {unit}"
