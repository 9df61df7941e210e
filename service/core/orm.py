"""SQLAlchemy tables: the source of truth for datasets, jobs, their per-epoch metrics and models."""

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp, stored in UTC. SQLite drops the zone; it is put back on read,
    so a row reads the same (e.g. `...Z` in JSON) right after the insert and later."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.astimezone(UTC) if value is not None and value.tzinfo else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and not value.tzinfo else value


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UTCDateTime()}


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


ACTIVE_STATUSES = (JobStatus.queued, JobStatus.running)
FINAL_STATUSES = (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


LOCAL_OWNER = "local"  # owns everything while authentication is off


class JobKind(StrEnum):
    training = "training"
    batch_prediction = "batch_prediction"  # scores a dataset with a model (`service.scoring`)


class ApiKey(Base):
    """An API key, stored as its SHA-256 (keys are random, so a fast hash is enough)."""

    __tablename__ = "api_key"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown by `dendrite keys list`
    is_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class Dataset(Base):
    __tablename__ = "dataset"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner: Mapped[str] = mapped_column(String(255), index=True, default=LOCAL_OWNER)
    name: Mapped[str] = mapped_column(String(255), index=True)
    format: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(Integer)
    # Tabular: one entry per column. NPZ: one entry per array (name, dtype, shape).
    columns: Mapped[list[Any]] = mapped_column(JSON)
    storage_key: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    jobs: Mapped[list["Job"]] = relationship(back_populates="dataset", passive_deletes=True)


class Job(Base):
    __tablename__ = "job"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner: Mapped[str] = mapped_column(String(255), index=True, default=LOCAL_OWNER)
    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("dataset.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.queued, index=True)
    # A batch prediction is a job too: the same lease, queue share, cancel, events and webhooks.
    kind: Mapped[str] = mapped_column(String(24), default=JobKind.training, index=True)
    task: Mapped[str] = mapped_column(String(16))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    device: Mapped[str] = mapped_column(String(8), default="auto")
    device_used: Mapped[str | None] = mapped_column(String(64))
    epochs: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    latest_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    request_sha256: Mapped[str | None] = mapped_column(String(64))
    worker: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    # Delivery: how many times a worker started it and did not hand it back cleanly (the lease
    # number, see service/leases.py), and when it was last sent to the broker.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    dispatched_at: Mapped[datetime | None]
    # Seconds per phase of the last attempt that finished training (workers/training.py).
    timings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Repeated experiments (service/experiments/repeats.py): a job with `repeats` > 1 is never run
    # itself; its parts (jobs with `parent_id`) train its repeats, each on a new split.
    repeats: Mapped[int] = mapped_column(Integer, default=1)
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("job.id", ondelete="CASCADE"), index=True
    )
    # Sweeps (service/experiments/sweeps.py): the sweep a trial belongs to, its number and its
    # parameters.
    sweep_id: Mapped[str | None] = mapped_column(
        ForeignKey("sweep.id", ondelete="CASCADE"), index=True
    )
    sweep_trial: Mapped[int | None] = mapped_column(Integer)
    sweep_params: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    dataset: Mapped[Dataset] = relationship(back_populates="jobs")
    model: Mapped["Model | None"] = relationship(back_populates="job", passive_deletes=True)
    history: Mapped[list["EpochMetric"]] = relationship(
        order_by="EpochMetric.epoch", passive_deletes=True
    )
    parts: Mapped[list["Job"]] = relationship(passive_deletes=True, order_by="Job.created_at")
    repeat_results: Mapped[list["JobRepeat"]] = relationship(
        foreign_keys="JobRepeat.job_id", order_by="JobRepeat.index", passive_deletes=True
    )


class EpochMetric(Base):
    __tablename__ = "epoch_metric"
    __table_args__ = (UniqueConstraint("job_id", "epoch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Model(Base):
    __tablename__ = "model"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner: Mapped[str] = mapped_column(String(255), index=True, default=LOCAL_OWNER)
    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), unique=True)
    task: Mapped[str] = mapped_column(String(16))
    # {"kind": "tabular"|"array", "features": [{"name", "input", "dtype", "categories"?, "fill"?}],
    #  "shape": [...] (arrays)}
    input_schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    # {"targets": [...], "labels": [...] | None}
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    test_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    parameters: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Predictions on the held-out rows (workers/diagnostics.py `held_out`): {"split", "rows",
    # "confusion_matrix": {"labels", "counts"}} or {..., "predicted_vs_actual": {target: ...}}
    evaluation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # What trained it: {"keras", "tensorflow", "device"} (None for models saved before 0009).
    trained_with: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    job: Mapped[Job] = relationship(back_populates="model")


class EpochDiagnostic(Base):
    """One epoch's gradient diagnostics on the job's probe batch, and the flags they raised."""

    __tablename__ = "epoch_diagnostic"
    __table_args__ = (UniqueConstraint("job_id", "epoch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    layers: Mapped[list[Any]] = mapped_column(JSON)
    flags: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobRepeat(Base):
    """One repeat of a repeated job: a fresh model on its own split (seed), trained by one of the
    job's parts (`run_job_id`); its final epoch's metrics and its test metrics."""

    __tablename__ = "job_repeat"
    __table_args__ = (UniqueConstraint("job_id", "index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    run_job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.queued)
    epochs: Mapped[int] = mapped_column(Integer, default=0)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    test_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    seconds: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[datetime | None]

    run_job: Mapped[Job] = relationship(foreign_keys=[run_job_id])


class Sweep(Base):
    """A grid or random search over fields of a job request; its trials are jobs (`sweep_id`)."""

    __tablename__ = "sweep"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner: Mapped[str] = mapped_column(String(255), index=True, default=LOCAL_OWNER)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    metric: Mapped[str] = mapped_column(String(255))
    direction: Mapped[str] = mapped_column(String(8))
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    trials: Mapped[list[Job]] = relationship(order_by="Job.sweep_trial", passive_deletes=True)


class WebhookSecret(Base):
    """An owner's key for signing webhook bodies (HMAC-SHA256); made on first use."""

    __tablename__ = "webhook_secret"

    owner: Mapped[str] = mapped_column(String(255), primary_key=True)
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """The outbox row of a job's `callback_url`, written with the job: `waiting` until the job
    ends, then `pending` (due at `next_attempt_at`) until `delivered` or `failed`."""

    __tablename__ = "webhook_delivery"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), unique=True)
    owner: Mapped[str] = mapped_column(String(255))
    url: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="waiting", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    history: Mapped[list["WebhookAttempt"]] = relationship(
        order_by="WebhookAttempt.number", passive_deletes=True
    )


class WebhookAttempt(Base):
    """One POST of a delivery: its answer's status code, or the error that stopped it."""

    __tablename__ = "webhook_attempt"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_delivery.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    seconds: Mapped[float] = mapped_column(Float)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


class RegisteredModel(Base):
    """A name an owner gives to a line of models: its versions, and aliases that point at one of
    them (`service.registry`)."""

    __tablename__ = "registered_model"
    __table_args__ = (UniqueConstraint("owner", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner: Mapped[str] = mapped_column(String(255), index=True, default=LOCAL_OWNER)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    versions: Mapped[list["ModelVersion"]] = relationship(
        order_by="ModelVersion.version", passive_deletes=True
    )
    aliases: Mapped[list["ModelAlias"]] = relationship(
        order_by="ModelAlias.alias", passive_deletes=True
    )


class ModelVersion(Base):
    """Version n of a registered model: a trained model, and where it came from (`lineage`)."""

    __tablename__ = "model_version"
    __table_args__ = (UniqueConstraint("registered_model_id", "version"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    registered_model_id: Mapped[str] = mapped_column(
        ForeignKey("registered_model.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    # A dataset deleted with cascade takes its jobs' models, and so their versions.
    model_id: Mapped[str] = mapped_column(ForeignKey("model.id", ondelete="CASCADE"), index=True)
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    model: Mapped[Model] = relationship()


class ModelAlias(Base):
    """A name (`production`, `champion`, ...) for one version of a registered model."""

    __tablename__ = "model_alias"

    registered_model_id: Mapped[str] = mapped_column(
        ForeignKey("registered_model.id", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[str] = mapped_column(
        ForeignKey("model_version.id", ondelete="CASCADE"), index=True
    )
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    version: Mapped[ModelVersion] = relationship()


class AliasMove(Base):
    """One change of an alias: who, when, from which version to which (None: set / removed)."""

    __tablename__ = "alias_move"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    registered_model_id: Mapped[str] = mapped_column(
        ForeignKey("registered_model.id", ondelete="CASCADE"), index=True
    )
    alias: Mapped[str] = mapped_column(String(64))
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int | None] = mapped_column(Integer)
    moved_by: Mapped[str] = mapped_column(String(255))
    moved_at: Mapped[datetime] = mapped_column(default=utcnow)


class BatchPrediction(Base):
    """What a batch-prediction job scores and where its files go; its status, lease and progress
    in chunks are its job's (`service.scoring`, `workers.scoring`)."""

    __tablename__ = "batch_prediction"

    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    # Not a foreign key: the model may go (with its dataset) while the job waits; it then fails.
    model_id: Mapped[str] = mapped_column(String(32), index=True)
    model_ref: Mapped[str] = mapped_column(String(255))  # as asked: an id, name@alias, ...
    output_format: Mapped[str] = mapped_column(String(16))
    passthrough: Mapped[list[Any]] = mapped_column(JSON)
    array: Mapped[str | None] = mapped_column(String(64))  # the NPZ array scored
    chunk_rows: Mapped[int] = mapped_column(Integer)
    rows_total: Mapped[int] = mapped_column(Integer)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    rows_failed: Mapped[int] = mapped_column(Integer, default=0)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    result_key: Mapped[str | None] = mapped_column(String(255))
    result_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    errors_key: Mapped[str | None] = mapped_column(String(255))
    errors_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
