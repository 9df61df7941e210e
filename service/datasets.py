"""Dataset use cases: upload (store, detect the format, infer the schema), look up, preview, delete.

Plain functions over a Session: they flush, never commit. Stored files follow the transaction:
an upload's file goes if the transaction rolls back, a deleted dataset's files only once the
delete has committed.
"""

from collections.abc import Iterable, Iterator
from functools import partial
from itertools import chain
from pathlib import PurePosixPath
from typing import Any, BinaryIO

import pandas as pd
from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service import models, registry
from service.core import errors, orm, storage
from service.core.after_commit import after_commit, on_rollback
from service.core.config import get_settings
from service.formats import csv_stats, npz, tabular
from service.formats.limits import Limits
from service.keys import Principal

CHUNK_BYTES = 1 << 20
FORMAT_LABELS = {"csv": "CSV", "parquet": "Parquet", "npz": "NPZ"}
EXTENSIONS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".npz": "npz"}
TEXT_EXTENSIONS = ("", ".csv", ".txt")
ACCEPTED = (
    "dendrite accepts CSV (.csv: UTF-8 text with a header row), Parquet (.parquet, .pq) and NPZ "
    f"(.npz: numpy.savez arrays {npz.NPZ_KEYS})"
)
MAX_NAME_LENGTH = 255


def create(
    session: Session,
    principal: Principal,
    stream: BinaryIO,
    filename: str | None,
    content_type: str | None,
    name: str | None,
) -> orm.Dataset:
    """Store an uploaded file and record it with its inferred schema.

    The content decides the format and a known extension must agree with it. `content_type` only
    appears in messages: browsers label CSV files inconsistently (e.g. application/vnd.ms-excel).
    The file name only names the dataset: the stored file is named by the dataset's id.
    """
    display_name = PurePosixPath((filename or "").replace("\\", "/").replace("\x00", "")).name
    dataset_name = _dataset_name(name, display_name)
    chunks = iter(lambda: stream.read(CHUNK_BYTES), b"")
    head = next(chunks, b"")
    if not head:
        raise errors.InvalidInput("the file is empty", field="file")
    file_format = _detect_format(head, display_name, content_type)
    dataset_id = orm.new_id()
    key = f"datasets/{dataset_id}.{file_format}"
    settings = get_settings()
    limits = Limits(
        rows=settings.max_rows,
        columns=settings.max_columns,
        decompressed_bytes=settings.max_decompressed_bytes,
        compression_ratio=settings.max_compression_ratio,
    )
    received = _within_quota(session, principal.owner, chain([head], chunks))
    # The schema is read from a local copy of what was stored (the stored file, if it is local).
    with storage.receive(key, received, settings.max_upload_bytes) as stored:
        try:
            if file_format == "npz":
                arrays = npz.read_npz(stored.path, limits)
                rows, columns = len(next(iter(arrays.values()))), npz.describe_arrays(arrays)
            else:
                rows, columns = csv_stats.describe_file(stored.path, file_format, limits)
            dataset = orm.Dataset(
                id=dataset_id,
                owner=principal.owner,
                name=dataset_name,
                format=file_format,
                size_bytes=stored.size,
                sha256=stored.sha256,
                rows=rows,
                columns=columns,
                storage_key=key,
            )
            session.add(dataset)
            session.flush()
        except BaseException:
            storage.delete(key)
            raise
    on_rollback(session, partial(storage.delete, key))  # a commit that fails leaves no file
    return dataset


def storage_used(session: Session, owner: str) -> int:
    """Bytes of the owner's stored datasets, models and batch-prediction files: what the storage
    quota counts."""
    used = 0
    for table in (orm.Dataset, orm.Model):
        total = select(func.coalesce(func.sum(table.size_bytes), 0)).where(table.owner == owner)
        used += int(session.scalar(total) or 0)
    files = orm.BatchPrediction.result_bytes + orm.BatchPrediction.errors_bytes
    predictions = (
        select(func.coalesce(func.sum(files), 0))
        .join(orm.Job, orm.Job.id == orm.BatchPrediction.job_id)
        .where(orm.Job.owner == owner)
    )
    return used + int(session.scalar(predictions) or 0)


def check_quota(session: Session, principal: Principal, size: int) -> None:
    """413 (quota_exceeded) if a file of `size` bytes would take the principal's datasets and
    models past DENDRITE_MAX_STORAGE_BYTES_PER_OWNER: for refusing an upload from its declared
    length, before its body is read."""
    quota = get_settings().max_storage_bytes_per_owner
    if quota:
        used = storage_used(session, principal.owner)
        if used + size > quota:
            raise _quota_exceeded(used, quota)


def _within_quota(session: Session, owner: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """`chunks`, cut off with a 413 (quota_exceeded) as soon as they would take the owner past
    DENDRITE_MAX_STORAGE_BYTES_PER_OWNER. Concurrent uploads of one owner are not serialized:
    together they may pass it by what they hold."""
    quota = get_settings().max_storage_bytes_per_owner
    if quota == 0:
        yield from chunks
        return
    used = storage_used(session, owner)
    received = 0
    for chunk in chunks:
        received += len(chunk)
        if used + received > quota:
            raise _quota_exceeded(used, quota)
        yield chunk


def _quota_exceeded(used: int, quota: int) -> errors.QuotaExceeded:
    left = max(quota - used, 0)
    return errors.QuotaExceeded(
        f"this file does not fit in your storage quota: your datasets and models use "
        f"{storage.human(used)} of {storage.human(quota)} ({used} of {quota} bytes, setting "
        f"DENDRITE_MAX_STORAGE_BYTES_PER_OWNER), {storage.human(left)} left, and the file is "
        "larger than that. Delete datasets you no longer need (DELETE /v1/datasets/{id}), or "
        "ask the operator for a larger quota",
        field="file",
    )


def _dataset_name(name: str | None, display_name: str) -> str:
    chosen = (name or "").strip()
    if "\x00" in chosen:  # PostgreSQL cannot store it, and no one types it
        raise errors.InvalidInput("the name holds a NUL character (\\x00)", field="name")
    if len(chosen) > MAX_NAME_LENGTH:
        detail = f"the name is {len(chosen)} characters long; the limit is {MAX_NAME_LENGTH}"
        raise errors.InvalidInput(detail, field="name")
    stem = display_name.rsplit(".", 1)[0] if "." in display_name[1:] else display_name
    return chosen or stem.strip()[:MAX_NAME_LENGTH] or "dataset"


def _detect_format(head: bytes, display_name: str, content_type: str | None) -> str:
    described = f"file '{display_name}'" if display_name else "the file"
    if content_type:
        described += f" (sent as {content_type})"
    if head.startswith(b"PAR1"):
        detected = "parquet"
    elif head.startswith(b"PK\x03\x04"):
        detected = "npz"
    elif head.startswith((b"\xff\xfe", b"\xfe\xff")):
        detail = f"{described} is UTF-16 text; a CSV must be UTF-8: save it as 'CSV UTF-8'"
        raise errors.InvalidInput(detail, field="file")
    elif b"\x00" in head[:8192]:
        detail = f"{described} is not a CSV, Parquet or NPZ file; {ACCEPTED}"
        raise errors.UnsupportedMediaType(detail, field="file")
    else:
        detected = "csv"
    suffix = PurePosixPath(display_name).suffix.lower()
    expected = EXTENSIONS.get(suffix)
    if expected is not None and expected != detected:
        raise errors.InvalidInput(
            f"file '{display_name}' is not a {FORMAT_LABELS[expected]} file; its content looks "
            f"like {FORMAT_LABELS[detected]}",
            field="file",
        )
    if detected == "csv" and suffix not in TEXT_EXTENSIONS:
        detail = f"{described} has the extension '{suffix}', which is not accepted; {ACCEPTED}"
        raise errors.UnsupportedMediaType(detail, field="file")
    return detected


def get(session: Session, principal: Principal, id_or_name: str) -> orm.Dataset:
    """A dataset by id, else the principal's own newest dataset with that name.

    Another owner's dataset answers exactly as a missing one does.
    """
    dataset = (
        _by_id(session, principal, id_or_name)
        or session.scalars(
            select(orm.Dataset)
            .where(orm.Dataset.owner == principal.owner, orm.Dataset.name == id_or_name)
            .order_by(orm.Dataset.created_at.desc())
            .limit(1)
        ).first()
    )
    if dataset is None:
        raise errors.NotFound(f"dataset '{id_or_name}' does not exist", field="dataset_id")
    return dataset


def _by_id(session: Session, principal: Principal, dataset_id: str) -> orm.Dataset | None:
    dataset = session.get(orm.Dataset, dataset_id)
    return dataset if dataset is not None and principal.can_see(dataset.owner) else None


def page(
    session: Session, principal: Principal, limit: int, offset: int
) -> tuple[list[orm.Dataset], int]:
    """One page of the datasets the principal may see, newest first, and their count."""
    visible = principal.visible(orm.Dataset.owner)
    total = session.scalar(select(func.count()).select_from(orm.Dataset).where(visible)) or 0
    query = (
        select(orm.Dataset).where(visible).order_by(orm.Dataset.created_at.desc(), orm.Dataset.id)
    )
    return list(session.scalars(query.limit(limit).offset(offset))), total


def preview(dataset: orm.Dataset, limit: int) -> list[dict[str, Any]]:
    """The first `limit` rows as JSON-safe records; NPZ rows as {"index", "x", "y"} (fewer when
    they are very wide: see npz.head)."""
    if dataset.format == "npz":  # only the rows shown are decompressed
        with storage.local_file(dataset.storage_key) as path:
            x, y = npz.head(path, limit).values()
        return [{"index": i, "x": x[i].tolist(), "y": y[i].tolist()} for i in range(len(x))]
    # Columns recorded as text stay text, even where the first rows alone look numeric.
    text_columns = [column["name"] for column in dataset.columns if column["dtype"] == "string"]
    if dataset.format == "csv":  # the header and `limit` records, not the whole file
        with storage.local_head(dataset.storage_key, limit + 1) as path:
            frame = tabular.read_table(path, "csv", nrows=limit, text_columns=text_columns)
    else:  # Parquet: the footer and the first row group, read where they lie
        handle, _ = storage.open_read(dataset.storage_key)
        with handle:
            frame = tabular.read_table(handle, "parquet", nrows=limit, text_columns=text_columns)
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return [
        {str(key): tabular.python_value(value) for key, value in row.items()} for row in records
    ]


MAX_LISTED_IDS = 20  # ids per kind of dependent in a 409


def delete(session: Session, principal: Principal, dataset_id: str, cascade: bool = False) -> None:
    """Delete a dataset (by id only) and its file. 409 while a queued or running job uses it;
    409 listing what depends on it (finished jobs, their models, sweeps) unless `cascade`, which
    deletes those too: sweeps whose every trial trained on it, and the model files."""
    dataset = _by_id(session, principal, dataset_id)
    if dataset is None:
        raise errors.NotFound(f"dataset '{dataset_id}' does not exist", field="dataset_id")
    active = session.scalars(
        select(orm.Job.id).where(
            orm.Job.dataset_id == dataset_id, orm.Job.status.in_(orm.ACTIVE_STATUSES)
        )
    ).all()
    if active:
        raise errors.Conflict(
            f"dataset '{dataset_id}' is used by {len(active)} queued or running job(s) "
            f"({', '.join(active[:5])}); cancel them or wait until they end, then delete it",
            field="dataset_id",
        )
    dependents = _dependents(session, dataset_id)
    if not cascade and any(dependents.values()):
        counted = ", ".join(
            f"{len(ids)} {kind.replace('_', ' ')}" for kind, ids in dependents.items() if ids
        )
        raise errors.HasDependents(
            f"dataset '{dataset_id}' has {counted} that depend on it (listed in `dependents`); "
            "deleting it deletes them too. To do so, send DELETE "
            f"/v1/datasets/{dataset_id}?cascade=true",
            {
                kind: {"count": len(ids), "ids": ids[:MAX_LISTED_IDS]}
                for kind, ids in dependents.items()
            },
            field="dataset_id",
        )
    model_keys = session.scalars(
        select(orm.Model.storage_key).join(orm.Job).where(orm.Job.dataset_id == dataset_id)
    ).all()
    prediction_files = session.execute(
        select(orm.BatchPrediction.result_key, orm.BatchPrediction.errors_key)
        .join(orm.Job, orm.Job.id == orm.BatchPrediction.job_id)
        .where(orm.Job.dataset_id == dataset_id)
    ).all()
    model_keys = [*model_keys, *(key for row in prediction_files for key in row if key)]
    # Sweeps left without a trial would read as failed: they go with their last trial.
    emptied = (
        select(orm.Sweep.id)
        .where(orm.Sweep.id.in_(dependents["sweeps"]))
        .where(
            ~select(orm.Job.id)
            .where(orm.Job.sweep_id == orm.Sweep.id, orm.Job.dataset_id != dataset_id)
            .exists()
        )
    )
    session.execute(sql_delete(orm.Sweep).where(orm.Sweep.id.in_(emptied)))
    # A bulk delete lets the database cascade to jobs and models (loaded jobs are not nulled).
    session.execute(sql_delete(orm.Dataset).where(orm.Dataset.id == dataset_id))
    session.flush()
    # The files go once the rows have: a delete that fails to commit leaves both.
    for key in [dataset.storage_key, *model_keys]:
        after_commit(session, partial(storage.delete, key))
    models.forget(session, dependents["models"])


def _dependents(session: Session, dataset_id: str) -> dict[str, list[str]]:
    """The ids of the jobs, models and sweeps that depend on the dataset, newest first, and the
    registered versions (`name/versions/n`) of those models. Jobs are those GET /v1/jobs lists
    (a repeated job's parts go with it)."""
    on_dataset = orm.Job.dataset_id == dataset_id
    queries = {
        "jobs": select(orm.Job.id, orm.Job.created_at).where(
            on_dataset, orm.Job.parent_id.is_(None), orm.Job.kind == orm.JobKind.training
        ),
        "batch_predictions": select(orm.Job.id, orm.Job.created_at).where(
            on_dataset, orm.Job.kind == orm.JobKind.batch_prediction
        ),
        "models": select(orm.Model.id, orm.Model.created_at).join(orm.Job).where(on_dataset),
        "sweeps": select(orm.Sweep.id, orm.Sweep.created_at).where(
            orm.Sweep.id.in_(select(orm.Job.sweep_id).where(on_dataset))
        ),
    }
    found = {
        kind: list(session.scalars(query.order_by(query.selected_columns[1].desc())))
        for kind, query in queries.items()
    }
    # Registered versions of those models: deleting the dataset deletes them (and their aliases).
    found["model_versions"] = registry.versions_of(session, found["models"])
    return found


def load_frame(dataset: orm.Dataset) -> pd.DataFrame:
    """A tabular dataset's rows, parsed exactly as at upload."""
    if dataset.format == "npz":
        detail = f"dataset '{dataset.id}' holds NPZ arrays, not a table"
        raise errors.InvalidInput(detail, field="dataset_id")
    with storage.local_file(dataset.storage_key) as path:
        return tabular.read_table(path, dataset.format)


def load_arrays(dataset: orm.Dataset) -> dict[str, tabular.Array]:
    """An NPZ dataset's arrays: x and y, or x_train and y_train (and x_test, y_test)."""
    if dataset.format != "npz":
        detail = (
            f"dataset '{dataset.id}' is a {FORMAT_LABELS[dataset.format]} table, not NPZ arrays"
        )
        raise errors.InvalidInput(detail, field="dataset_id")
    with storage.local_file(dataset.storage_key) as path:
        return npz.read_npz(path)
