"""The artifact store: datasets, models and training checkpoints, named by keys such as
`datasets/<id>.csv`, in a local directory or in S3-compatible object storage (fsspec + s3fs),
chosen by one setting, DENDRITE_ARTIFACTS_URL.

Keys are built from ids only, never from user file names. Every write is atomic: an object
appears whole or not at all. A local store's files are used in place; where a library needs a
local file and the store is remote, it gets a temporary copy (`local_file`, `local_target`,
`checkpoint_folder`), which is removed when the block ends. A local store's folders are 0700 and
its files 0600, the owner's alone (`service.core.filemodes`).
"""

import hashlib
import os
import posixpath
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from service.core import errors, filemodes
from service.core.config import get_settings

CHUNK_BYTES = 1 << 20
# S3 uploads: one PUT below two parts, else a multipart upload of parts this size (S3's least is
# 5 MiB). s3fs holds one part in memory at a time.
PART_BYTES = 8 << 20
HEAD_BYTES = 256 << 10  # reads of a remote file's first records (previews)


@dataclass(frozen=True)
class Stored:
    """An object just written: its size, its sha256, and a local file holding its bytes."""

    size: int
    sha256: str
    path: Path


def _store() -> tuple[Any, str]:
    """The filesystem and the root path in it. fsspec caches the instance (per process)."""
    settings = get_settings()
    options: dict[str, Any] = {}
    if settings.artifacts_location.startswith("s3://"):
        # Another process may add or remove objects at any time: list afresh every time.
        options = {"endpoint_url": settings.s3_endpoint_url, "use_listings_cache": False}
    fs, root = fsspec.core.url_to_fs(settings.artifacts_location, **options)
    return fs, str(root).rstrip("/")


def reachable() -> bool:
    """Whether the store answers: a local root that exists (or can be made) and is writable, or
    a bucket that the remote store can see."""
    try:
        fs, root = _store()
        if isinstance(fs, LocalFileSystem):
            filemodes.private_dir(Path(root), tighten=True)
            return os.access(root, os.W_OK | os.X_OK)
        return bool(fs.exists(root.split("/", 1)[0]))
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False


def is_local() -> bool:
    return isinstance(_store()[0], LocalFileSystem)


def local_root() -> Path | None:
    """The folder of a local store; None for a remote one."""
    fs, root = _store()
    return Path(root) if isinstance(fs, LocalFileSystem) else None


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still add to the filesystem that holds `path` (or its
    nearest existing parent)."""
    for folder in (path, *path.parents):
        if folder.exists():
            stats = os.statvfs(folder)
            return stats.f_bavail * stats.f_frsize
    raise FileNotFoundError(path)


def human(size: int) -> str:
    """A byte count for people: '1.5 GiB'."""
    return _human(size)


def _checked(key: str) -> str:
    normal = posixpath.normpath(key) if key else ""
    if (
        not normal
        or normal.startswith("/")
        or normal in (".", "..")
        or normal.startswith("../")
        or "\\" in key
        or "\x00" in key
    ):
        raise ValueError(f"storage key {key!r} points outside the artifact store")
    return normal


def _local_path(root: str, key: str) -> Path:
    base = Path(root).resolve()
    target = (base / key).resolve()  # a symlink out of the store is refused too
    if target == base or not target.is_relative_to(base):
        raise ValueError(f"storage key {key!r} points outside the artifact store")
    return target


def _locate(key: str) -> tuple[Any, str, Path | None]:
    """(filesystem, path in it, local Path or None for a remote store) of a checked key."""
    fs, root = _store()
    key = _checked(key)
    if isinstance(fs, LocalFileSystem):
        target = _local_path(root, key)
        return fs, str(target), target
    return fs, f"{root}/{key}", None


@contextmanager
def receive(key: str, chunks: Iterable[bytes], max_bytes: int) -> Iterator[Stored]:
    """Store `chunks` under `key`, streamed (never whole in memory) and atomically; inside the
    block, `Stored.path` is a local file with the bytes (the stored file itself in a local store).

    A source that fails or passes `max_bytes` leaves nothing behind. A remote store gets the
    bytes only once they are all in: one PUT, or a multipart upload that s3fs aborts if it fails.
    """
    fs, remote, target = _locate(key)
    if target is not None:
        filemodes.private_dir(target.parent)
        size, sha256 = _spool(chunks, max_bytes, target)
        yield Stored(size, sha256, target)
        return
    with tempfile.TemporaryDirectory(prefix="dendrite-upload-") as folder:
        local = Path(folder) / posixpath.basename(remote)
        size, sha256 = _spool(chunks, max_bytes, local)
        fs.put_file(str(local), remote, chunksize=PART_BYTES)
        yield Stored(size, sha256, local)


def write_stream(key: str, chunks: Iterable[bytes], max_bytes: int) -> tuple[int, str]:
    """Write `chunks` to `key` atomically; return (size in bytes, sha256 hex digest)."""
    with receive(key, chunks, max_bytes) as stored:
        return stored.size, stored.sha256


def _spool(chunks: Iterable[bytes], max_bytes: int, target: Path) -> tuple[int, str]:
    """Write `chunks` to a temporary file beside `target`, then rename it into place (mkstemp
    makes it 0600, the owner's alone)."""
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


def upload(path: Path, key: str) -> None:
    """Store the local file `path` under `key`, atomically. Nothing to do where `path` already
    is the key's file in a local store."""
    fs, remote, target = _locate(key)
    if target is None:
        fs.put_file(str(path), remote, chunksize=PART_BYTES)
    elif path.resolve() != target:
        filemodes.private_dir(target.parent)
        with path.open("rb") as source:
            _spool(iter(lambda: source.read(CHUNK_BYTES), b""), 1 << 62, target)


@contextmanager
def local_file(key: str) -> Iterator[Path]:
    """A local file holding `key`'s bytes, for libraries that read paths (pandas, pyarrow, Keras):
    the stored file itself in a local store, else a temporary copy. FileNotFoundError if absent."""
    fs, remote, target = _locate(key)
    if target is not None:
        if not target.is_file():
            raise FileNotFoundError(f"artifact {key!r} is not in the store")
        yield target
        return
    with tempfile.TemporaryDirectory(prefix="dendrite-") as folder:
        local = Path(folder) / posixpath.basename(remote)
        fs.get_file(remote, str(local))
        yield local


@contextmanager
def local_head(key: str, records: int) -> Iterator[Path]:
    """A local file with the first `records` CSV records of `key`: the stored file itself in a
    local store, else a temporary copy of only those bytes (a preview of a large remote file
    reads a block or two of it). FileNotFoundError if absent."""
    fs, remote, target = _locate(key)
    if target is not None:
        with local_file(key) as path:
            yield path
        return
    with tempfile.TemporaryDirectory(prefix="dendrite-") as folder:
        local = Path(folder) / posixpath.basename(remote)
        with fs.open(remote, "rb", block_size=HEAD_BYTES) as source, local.open("wb") as copy:
            _copy_records(source, copy, records)
        yield local


_QUOTE_OR_NEWLINE = re.compile(rb'["\n]')


def _copy_records(source: IO[bytes], copy: IO[bytes], records: int) -> None:
    """Copy up to the end of the `records`-th CSV record: its newline is outside double quotes
    (a quote inside a quoted field is doubled, so counting quotes tells inside from outside)."""
    in_quotes, left = False, records
    for chunk in iter(lambda: source.read(HEAD_BYTES), b""):
        for match in _QUOTE_OR_NEWLINE.finditer(chunk):
            if match.group() == b'"':
                in_quotes = not in_quotes
            elif not in_quotes:
                left -= 1
                if left == 0:
                    copy.write(chunk[: match.end()])
                    return
        copy.write(chunk)


@contextmanager
def local_target(key: str) -> Iterator[Path]:
    """A local path to write `key` to (e.g. a Keras `.keras` file). In a local store it is the
    key's own path (the writer makes it atomic); else a temporary file, uploaded when the block
    ends without an error."""
    _, remote, target = _locate(key)
    if target is not None:
        filemodes.private_dir(target.parent)
        yield target
        return
    with tempfile.TemporaryDirectory(prefix="dendrite-") as folder:
        local = Path(folder) / posixpath.basename(remote)
        yield local
        upload(local, key)


def open_read(key: str) -> tuple[IO[bytes], int]:
    """An open binary file of `key`, streamed from the store, and its size in bytes."""
    fs, remote, target = _locate(key)
    if target is not None:
        handle: IO[bytes] = target.open("rb")
        return handle, os.fstat(handle.fileno()).st_size
    remote_file = fs.open(remote, "rb", block_size=CHUNK_BYTES, cache_type="readahead")
    return remote_file, int(remote_file.size)


def delete(key: str) -> None:
    """Remove `key`; a missing key is fine."""
    fs, remote, target = _locate(key)
    if target is not None:
        target.unlink(missing_ok=True)
    else:
        fs.rm_file(remote)  # S3 deletes a missing key without complaint


def exists(key: str) -> bool:
    fs, remote, target = _locate(key)
    return target.is_file() if target is not None else bool(fs.isfile(remote))


def list_keys(prefix: str) -> list[str]:
    """The keys under the folder `prefix`, sorted."""
    fs, root = _store()
    prefix = _checked(prefix)
    if isinstance(fs, LocalFileSystem):
        folder = _local_path(root, prefix)
        base = Path(root).resolve()
        files = folder.rglob("*") if folder.is_dir() else []
        return sorted(p.relative_to(base).as_posix() for p in files if p.is_file())
    return sorted(str(p)[len(root) + 1 :] for p in fs.find(f"{root}/{prefix}"))


def checkpoint_key(job_id: str, name: str) -> str:
    return f"checkpoints/{job_id}/{name}"


@contextmanager
def checkpoint_folder(job_id: str) -> Iterator[Path]:
    """A local folder holding the job's checkpoint files, for Keras' BackupAndRestore: the store's
    folder itself in a local store; else a temporary folder filled from the store, so a job
    resumed on another machine starts from its last checkpoint. Write files back with `upload`."""
    prefix = checkpoint_key(job_id, "")
    fs, root = _store()
    if isinstance(fs, LocalFileSystem):
        yield _local_path(root, prefix)  # the checkpoint creates it when it first saves
        return
    with tempfile.TemporaryDirectory(prefix=f"dendrite-checkpoint-{job_id}-") as name:
        folder = Path(name)
        for key in list_keys(prefix):
            fs.get_file(f"{root}/{key}", str(folder / posixpath.basename(key)))
        yield folder


def delete_checkpoint(job_id: str) -> None:
    fs, remote, target = _locate(checkpoint_key(job_id, ""))
    if target is not None:
        shutil.rmtree(target, ignore_errors=True)
        return
    with suppress(FileNotFoundError):  # no checkpoint was written
        fs.rm(remote, recursive=True)


def _human(size: int) -> str:
    value, unit = float(size), "bytes"
    for larger in ("KiB", "MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{value:.4g} {unit}"
