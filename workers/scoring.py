"""A batch prediction's attempt in a worker process: the dataset read in chunks, each chunk
checked, scored by the model's compiled forward pass and appended to the result file, rows that
cannot be scored to the errors file; progress, cancel and the lease after every chunk.

The worker holds one chunk (`chunk_rows` rows) of the dataset at a time, whatever its size: a CSV
is read with pandas' chunked reader, a Parquet file batch by batch (only the columns used).
NPZ arrays are read whole (NumPy cannot stream an array out of a zip), then scored in chunks.

An attempt that is lost or handed back leaves no file; the next one starts from the first row.
"""

import contextlib
import csv
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from sqlalchemy import update

from service import datasets, leases
from service import scoring as batches
from service.core import storage
from service.core.config import get_settings
from service.core.db import session_scope
from service.core.errors import DendriteError
from service.core.orm import BatchPrediction, Dataset, Job, JobStatus, Model
from service.formats import tabular
from service.leases import Attempt
from service.ml import artifacts, builder
from service.ml.inference import Served
from workers import attempts, pipeline
from workers.callbacks import Stop

log = logging.getLogger(__name__)

ERROR_COLUMNS = ("row", "column", "reason")
PROGRESS_SECONDS = 0.25
_ARROW_TYPES = {"integer": pa.int64(), "float": pa.float64(), "boolean": pa.bool_()}


@dataclass(frozen=True)
class Work:
    """What an attempt scores, read from the database once."""

    job_id: str
    batch: BatchPrediction
    model: Model
    dataset: Dataset
    room: int | None  # bytes the owner's storage quota leaves for the files; None: no quota


def run(attempt: Attempt, stop: Stop) -> None:
    """Score the attempt's batch prediction; its end (or the stop) is recorded by the caller's
    handlers for `pipeline.Stopped` and `DendriteError`, as for training."""
    work = _load(attempt)
    served = _served(work.model)
    chunks = _chunks(work)
    score = Score(work.model)
    result_key = batches.result_key(work.job_id, "result", work.batch.output_format)
    errors_key = batches.result_key(work.job_id, "errors", "csv")
    try:
        sizes = _write(work, served, chunks, (result_key, errors_key), attempt, stop, score)
    except BaseException:
        for key in (result_key, errors_key):  # a partial file of an attempt that did not end
            with contextlib.suppress(Exception):
                storage.delete(key)
        raise
    with session_scope() as session:
        session.execute(
            update(BatchPrediction)
            .where(BatchPrediction.job_id == work.job_id)
            .values(
                result_key=result_key,
                errors_key=errors_key,
                result_bytes=sizes[0],
                errors_bytes=sizes[1],
                metrics=score.metrics(),
            )
        )
        if attempts.end(session, attempt, JobStatus.succeeded):
            return
        session.rollback()
    log.warning("batch prediction %s: another attempt holds it now", work.job_id)


def _write(
    work: Work,
    served: Served,
    chunks: Iterator["Chunk"],
    keys: tuple[str, str],
    attempt: Attempt,
    stop: Stop,
    score: "Score",
) -> tuple[int, int]:
    """Score every chunk into the two files; their sizes."""
    with contextlib.ExitStack() as files:
        result_path = files.enter_context(storage.local_target(keys[0]))
        errors_path = files.enter_context(storage.local_target(keys[1]))
        with _Result(result_path, work) as result, _Errors(errors_path) as errors:
            unsaved, number = Progress(), 0
            for number, chunk in enumerate(chunks, start=1):
                reason = stop.reason
                if reason is not None:
                    raise pipeline.Stopped(reason)
                scored = _score_chunk(work, served, chunk, score)
                result.write(scored.frame)
                errors.write(scored.errors)
                unsaved.add(scored)
                if unsaved.due():
                    _check_room(work, result_path, errors_path)
                    _progress(attempt, stop, number, unsaved)
            if unsaved.rows:
                _progress(attempt, stop, number, unsaved)
            reason = stop.reason
            if reason is not None:
                raise pipeline.Stopped(reason)
        _check_room(work, result_path, errors_path)  # the files closed: their whole size
        return result_path.stat().st_size, errors_path.stat().st_size


def _check_room(work: Work, *paths: Path) -> None:
    """The job fails once its files outgrow what the owner's storage quota left for them."""
    if work.room is None:
        return
    size = sum(path.stat().st_size for path in paths if path.exists())
    if size > work.room:
        raise DendriteError(
            f"the result would take more than the {storage.human(work.room)} your storage quota "
            "(DENDRITE_MAX_STORAGE_BYTES_PER_OWNER) leaves; delete datasets or batch "
            "predictions you no longer need, or pass fewer columns through, and submit it again"
        )


def _load(attempt: Attempt) -> Work:
    with session_scope() as session:
        job = session.get_one(Job, attempt.job_id)
        batch = session.get_one(BatchPrediction, job.id)
        model = session.get(Model, batch.model_id)
        if model is None:
            raise DendriteError(
                f"model '{batch.model_id}' was deleted (with the dataset it trained on) before "
                "this batch prediction ran"
            )
        # A new attempt starts from the first row.
        batch.rows_done = batch.rows_failed = 0
        leases.touch(session, attempt, epoch=0)
        dataset = job.dataset
        quota = get_settings().max_storage_bytes_per_owner
        room = max(quota - datasets.storage_used(session, job.owner), 0) if quota else None
        session.flush()
        for row in (batch, model, dataset):
            session.expunge(row)
    return Work(attempt.job_id, batch, model, dataset, room)


def _served(model: Model) -> Served:
    with storage.local_file(model.storage_key) as path:
        return Served(artifacts.load(path))


class Progress:
    """Rows scored since progress was last written: written at most every PROGRESS_SECONDS (each
    write is a commit; a chunk of a small model takes milliseconds)."""

    def __init__(self) -> None:
        self.rows = self.failed = 0
        self.written = time.monotonic()

    def add(self, scored: "Scored") -> None:
        self.rows += scored.rows
        self.failed += len(scored.errors)

    def due(self) -> bool:
        return time.monotonic() - self.written >= PROGRESS_SECONDS


def _progress(attempt: Attempt, stop: Stop, number: int, progress: Progress) -> None:
    """Progress (chunks on the job, rows on its batch row), the lease, and any cancel request."""
    rows, failed = progress.rows, progress.failed
    progress.rows = progress.failed = 0
    progress.written = time.monotonic()
    with session_scope() as session:
        if not leases.touch(session, attempt, epoch=number):
            stop.lost.set()
            return
        session.execute(
            update(BatchPrediction)
            .where(BatchPrediction.job_id == attempt.job_id)
            .values(
                rows_done=BatchPrediction.rows_done + rows,
                rows_failed=BatchPrediction.rows_failed + failed,
            )
        )
        if leases.cancel_requested(session, attempt.job_id):
            stop.cancelled.set()
    stop.check_deadline()


# --- reading ----------------------------------------------------------------------------------


@dataclass
class Chunk:
    start: int  # the first row's index in the dataset (0-based, header excluded)
    frame: pd.DataFrame | None = None  # table rows: the columns used
    x: np.ndarray | None = None  # NPZ samples
    y: np.ndarray | None = None  # and their labels, when the file has them


def _chunks(work: Work) -> Iterator[Chunk]:
    batch, dataset = work.batch, work.dataset
    if batch.array is not None:
        yield from _array_chunks(work)
        return
    dtypes = {column["name"]: column["dtype"] for column in dataset.columns}
    used = [f["name"] for f in work.model.input_schema["features"]]
    targets = _targets(work.model)
    used += [name for name in [*batch.passthrough, *targets] if name in dtypes and name not in used]
    text = [name for name in used if dtypes[name] == "string"]
    start = 0
    with storage.local_file(dataset.storage_key) as path:
        for frame in _frames(path, dataset, used, text, batch.chunk_rows):
            yield Chunk(start=start, frame=frame)
            start += len(frame)


def _frames(
    path: Path, dataset: Dataset, used: list[str], text: list[str], rows: int
) -> Iterator[pd.DataFrame]:
    if dataset.format == "csv":
        with path.open(encoding="utf-8-sig", newline="") as file:
            header = next(row for row in csv.reader(file) if row)
        options = tabular.csv_options(tabular.column_names(header))
        reader = pd.read_csv(
            path,
            chunksize=rows,
            usecols=used,
            dtype=dict.fromkeys(text, "str"),
            low_memory=False,
            **options,
        )
        with reader:
            yield from reader
        return
    parquet = pq.ParquetFile(path)
    for record_batch in parquet.iter_batches(batch_size=rows, columns=used):
        yield record_batch.to_pandas()


def _array_chunks(work: Work) -> Iterator[Chunk]:
    arrays = datasets.load_arrays(work.dataset)
    name = work.batch.array or "x"
    x = arrays[name]
    label_name = "y" + name[1:]
    y = arrays.get(label_name)
    for start in range(0, len(x), work.batch.chunk_rows):
        stop = start + work.batch.chunk_rows
        yield Chunk(start=start, x=x[start:stop], y=None if y is None else y[start:stop])


def _targets(model: Model) -> list[str]:
    targets = model.outputs.get("targets") or []
    return [str(target) for target in targets]


# --- scoring ----------------------------------------------------------------------------------


@dataclass
class Scored:
    rows: int  # rows read
    frame: pd.DataFrame  # result rows of the rows scored
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # (row, column, reason)


def _score_chunk(work: Work, served: Served, chunk: Chunk, score: "Score") -> Scored:
    if chunk.x is not None:
        return _score_arrays(work, served, chunk, score)
    assert chunk.frame is not None
    frame = chunk.frame
    n = len(frame)
    ok = np.ones(n, dtype=bool)
    errors: list[tuple[int, str, str]] = []
    inputs: dict[str, np.ndarray] = {}
    for feature in work.model.input_schema["features"]:
        name, fill = feature["name"], feature.get("fill")
        values = frame[name]
        if feature["kind"] == "numeric":
            numbers = pd.to_numeric(values, errors="coerce").astype("float64")
            missing = numbers.isna().to_numpy()
            if fill is not None:
                numbers = numbers.fillna(fill)
            else:
                _fault(errors, ok, chunk.start, missing, name, _MISSING)
            inputs[feature["input"]] = numbers.fillna(0.0).to_numpy(dtype="float32").reshape(-1, 1)
        else:
            strings = values.astype(object)
            missing = strings.isna().to_numpy()
            if fill is not None:
                strings = strings.where(~missing, fill)
                missing = np.zeros(n, dtype=bool)
            else:
                _fault(errors, ok, chunk.start, missing, name, _MISSING)
            strings = strings.map(lambda value: "" if value is None else str(value).strip())
            known = set(map(str, feature.get("categories") or []))
            if known:
                unknown = ~strings.isin(known).to_numpy() & ~missing
                for index in np.flatnonzero(unknown & ok):
                    errors.append(
                        (
                            chunk.start + int(index),
                            name,
                            f"unknown category '{strings.iloc[index]}' (the model knows "
                            f"{_listed(sorted(known))})",
                        )
                    )
                ok &= ~unknown
            inputs[feature["input"]] = strings.to_numpy(dtype=object).reshape(-1, 1)
    errors.sort()
    good = np.flatnonzero(ok)
    raw = (
        served.predict(builder.model_inputs({k: v[good] for k, v in inputs.items()}))
        if len(good)
        else np.zeros((0, len(work.model.outputs.get("labels") or _targets(work.model))))
    )
    result = pd.DataFrame({batches.ROW_COLUMN: chunk.start + good})
    for name in work.batch.passthrough:
        result[name] = frame[name].to_numpy()[good]
    _predictions(work.model, raw, result)
    targets = _targets(work.model)
    if targets and all(name in frame.columns for name in targets):
        score.add(raw, frame[targets].iloc[good])
    return Scored(rows=n, frame=result, errors=errors)


_MISSING = "missing value (the model was trained without filling missing values)"


def _fault(
    errors: list[tuple[int, str, str]],
    ok: np.ndarray,
    start: int,
    bad: np.ndarray,
    column: str,
    reason: str,
) -> None:
    """Rows of `bad` that are still ok get their first error."""
    for index in np.flatnonzero(bad & ok):
        errors.append((start + int(index), column, reason))
    ok &= ~bad


def _listed(values: list[str], most: int = 10) -> str:
    shown = ", ".join(repr(v) for v in values[:most])
    return shown + (f" and {len(values) - most} more" if len(values) > most else "")


def _score_arrays(work: Work, served: Served, chunk: Chunk, score: "Score") -> Scored:
    assert chunk.x is not None
    x = chunk.x.astype("float32", copy=False)
    finite = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    errors = [
        (chunk.start + int(i), work.batch.array or "x", "NaN or infinite values")
        for i in np.flatnonzero(~finite)
    ]
    good = np.flatnonzero(finite)
    raw = served.predict(x[good]) if len(good) else np.zeros((0, 1))
    result = pd.DataFrame({batches.ROW_COLUMN: chunk.start + good})
    _predictions(work.model, raw, result)
    if chunk.y is not None:
        labels = pd.DataFrame({"y": chunk.y[good].reshape(len(good), -1)[:, 0]})
        score.add(raw, labels)
    return Scored(rows=len(x), frame=result, errors=errors)


def _predictions(model: Model, raw: np.ndarray, result: pd.DataFrame) -> None:
    labels = model.outputs.get("labels")
    columns = batches.output_columns(model)
    if labels is not None:
        picked = np.asarray(labels, dtype=object)[np.argmax(raw, axis=1)] if len(raw) else []
        result[columns[0]] = pd.Series(list(picked), dtype=object)
        for index, column in enumerate(columns[1:]):
            result[column] = raw[:, index].astype("float64")
        return
    for index, column in enumerate(columns):
        result[column] = raw[:, index].astype("float64")


class Score:
    """Metrics of the predictions against the dataset's targets, summed chunk by chunk over the
    rows that have a target value: MSE, MAE and R² (regression), accuracy and log loss
    (classification)."""

    def __init__(self, model: Model) -> None:
        self.labels: list[Any] | None = model.outputs.get("labels")
        self.count = 0
        self.sums: dict[str, float] = {"squared": 0.0, "absolute": 0.0, "y": 0.0, "y2": 0.0}
        self.correct = 0
        self.log_loss = 0.0

    def add(self, raw: np.ndarray, targets: pd.DataFrame) -> None:
        if self.labels is not None:
            index = {str(label): i for i, label in enumerate(self.labels)}
            truth = targets.iloc[:, 0].map(
                lambda v: index.get(str(_plain(v)), -1) if pd.notna(v) else -1
            )
            known = truth.to_numpy() >= 0
            rows = raw[known]
            truth_index = truth.to_numpy()[known].astype(int)
            self.count += len(rows)
            self.correct += int((np.argmax(rows, axis=1) == truth_index).sum()) if len(rows) else 0
            picked = rows[np.arange(len(rows)), truth_index] if len(rows) else np.zeros(0)
            self.log_loss += float(-np.log(np.clip(picked, 1e-7, 1.0)).sum())
            return
        y = targets.apply(pd.to_numeric, errors="coerce").to_numpy(dtype="float64")
        keep = ~np.isnan(y).any(axis=1)
        y, predicted = y[keep], raw[keep].astype("float64")
        self.count += len(y)
        self.sums["squared"] += float(((predicted - y) ** 2).mean(axis=1).sum())
        self.sums["absolute"] += float(np.abs(predicted - y).mean(axis=1).sum())
        self.sums["y"] += float(y.mean(axis=1).sum())
        self.sums["y2"] += float((y.mean(axis=1) ** 2).sum())

    def metrics(self) -> dict[str, float] | None:
        if self.count == 0:
            return None
        n = self.count
        if self.labels is not None:
            return {"accuracy": self.correct / n, "log_loss": self.log_loss / n, "rows": n}
        mse = self.sums["squared"] / n
        variance = self.sums["y2"] / n - (self.sums["y"] / n) ** 2
        metrics = {"mse": mse, "rmse": math.sqrt(mse), "mae": self.sums["absolute"] / n, "rows": n}
        if variance > 0:
            metrics["r2"] = 1.0 - mse / variance
        return metrics


def _plain(value: Any) -> Any:
    """A label as the model's outputs list it: 3.0 read from a CSV column of floats is 3."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value.item() if isinstance(value, np.generic) else value


# --- writing ----------------------------------------------------------------------------------


class _Result(contextlib.AbstractContextManager["_Result"]):
    """The result file, appended to chunk by chunk in the job's output format. CSV and Parquet
    go through Arrow's writers (with one schema for every chunk); JSONL through pandas'."""

    def __init__(self, path: Path, work: Work) -> None:
        self.path, self.format = path, work.batch.output_format
        self.schema = _schema(work)
        self.file: IO[str] | None = None
        self.writer: pq.ParquetWriter | pa_csv.CSVWriter | None = None

    def __enter__(self) -> "_Result":
        if self.format == "parquet":
            self.writer = pq.ParquetWriter(self.path, self.schema)
        elif self.format == "csv":
            options = pa_csv.WriteOptions(quoting_style="needed")
            self.writer = pa_csv.CSVWriter(self.path, self.schema, write_options=options)
        else:
            self.file = self.path.open("w", encoding="utf-8", newline="")
        return self

    def write(self, frame: pd.DataFrame) -> None:
        if self.writer is not None:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            self.writer.write_table(table.cast(self.schema))
        elif len(frame):
            assert self.file is not None
            # 15 significant digits: every float32 prediction exactly, no float64 noise.
            text = frame.to_json(orient="records", lines=True, double_precision=15)
            self.file.write(text if text.endswith("\n") else text + "\n")

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            self.file.close()
        if self.writer is not None:
            self.writer.close()


def _schema(work: Work) -> pa.Schema:
    dtypes = {column["name"]: column["dtype"] for column in work.dataset.columns}
    fields = [pa.field(batches.ROW_COLUMN, pa.int64(), nullable=False)]
    for name in work.batch.passthrough:
        fields.append(pa.field(name, _ARROW_TYPES.get(dtypes.get(name, ""), pa.string())))
    labels = work.model.outputs.get("labels")
    columns = batches.output_columns(work.model)
    if labels is not None:
        kinds = {type(label) for label in labels}
        label_type = (
            pa.int64() if kinds <= {int} else pa.float64() if kinds <= {int, float} else pa.string()
        )
        fields.append(pa.field(columns[0], label_type))
        columns = columns[1:]
    fields += [pa.field(column, pa.float64()) for column in columns]
    return pa.schema(fields)


class _Errors(contextlib.AbstractContextManager["_Errors"]):
    """The errors file: a CSV of row, column and reason, one line per row not scored."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file: IO[str] | None = None

    def __enter__(self) -> "_Errors":
        self.file = self.path.open("w", encoding="utf-8", newline="")
        self.writer = csv.writer(self.file, lineterminator="\n")
        self.writer.writerow(ERROR_COLUMNS)
        return self

    def write(self, errors: list[tuple[int, str, str]]) -> None:
        self.writer.writerows(errors)

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            self.file.close()
