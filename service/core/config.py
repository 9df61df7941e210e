"""Settings, read from `DENDRITE_*` environment variables; the only reader of the environment."""

import base64
import ipaddress
import os
import threading
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# How long a job may overrun its time limit (finishing the epoch in progress) before Celery's
# hard time limit kills its worker process.
JOB_TIME_LIMIT_GRACE = 600


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DENDRITE_", extra="ignore")

    data_dir: Path = Field(
        default=Path("dendrite-data"),
        description="Where embedded mode keeps its SQLite file, broker queue and artifacts.",
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite (WAL) in the data directory."
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker URL; default: an on-disk queue in the data directory.",
    )
    artifacts_dir: Path | None = Field(
        default=None,
        description="Where datasets and models are stored; default: DATA_DIR/artifacts.",
    )
    artifacts_url: str | None = Field(
        default=None,
        description="The artifact store (datasets, models, checkpoints): a local directory, or "
        "s3://bucket/prefix for S3-compatible object storage shared by workers on many machines; "
        "default: DENDRITE_ARTIFACTS_DIR, else DATA_DIR/artifacts.",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="The S3 endpoint of an s3:// artifact store (MinIO, Ceph, ...); default: AWS. "
        "Credentials come from the standard AWS chain (AWS_ACCESS_KEY_ID, ~/.aws, roles).",
    )
    broker_polling_interval: float = Field(
        default=0.1, description="Seconds between polls of the on-disk broker (embedded mode)."
    )
    visibility_timeout: int = Field(
        default=7 * 3600,
        description="Redis visibility timeout: above the job time limit plus its grace period.",
    )
    # A whole worker that dies is noticed within stale_after + a sweep (stale_after / 4): about
    # 20 s. A heartbeat is one UPDATE of the job's row; docs/security.md says what it costs.
    heartbeat_interval: float = Field(
        default=4.0, gt=0, description="Seconds between job heartbeats."
    )
    stale_after: float = Field(
        default=16.0,
        gt=0,
        description="A running job whose heartbeat is older than this many seconds goes back to "
        "the queue (or fails once it has used its attempts); the API looks every quarter of "
        "this. Keep it several heartbeats long.",
    )
    worker_max_memory_mb: int | None = Field(
        default=None,
        ge=0,
        description="Most resident memory (MiB) one training process may use; past it the job "
        "fails with a message saying so. Default: 90% of the machine's (or container's) memory, "
        "shared by the jobs a worker runs at once; 0: no ceiling.",
    )
    worker_jobs_per_process: int = Field(
        default=25,
        ge=1,
        description="Jobs one training process runs before the worker replaces it: TensorFlow is "
        "imported once per process, not once per job (Keras' state is cleared between jobs). "
        "1: a fresh process for every job.",
    )
    embedded_concurrency: int = Field(
        default_factory=lambda: max(1, min(4, os.cpu_count() or 1)),
        ge=1,
        description="Jobs `dendrite serve` trains at once (default: the machine's cores, at most "
        "4). Small jobs spend much of their time outside the arithmetic, so on 2 cores two at once "
        "finish a batch of them sooner than one at a time (benchmark h).",
    )
    worker_recycle_memory_mb: int = Field(
        default=2048,
        ge=256,
        description="A training process whose resident memory (MiB) is past this when a job "
        "ends is replaced before the next job.",
    )
    max_attempts: int = Field(
        default=3, ge=1, description="Times a job may be started by a worker that then stops."
    )
    redispatch_after: float = Field(
        default=60.0,
        gt=0,
        description="A queued job that the broker lost is sent again once it has waited this many "
        "seconds since it was last sent.",
    )
    job_time_limit: int = Field(
        default=6 * 3600, ge=1, description="Seconds a job may run, from its first start."
    )
    checkpoint_interval: float = Field(
        default=10.0,
        ge=0,
        description="Least seconds between training checkpoints (written at epoch ends; 0: after "
        "every epoch).",
    )
    prediction_cache_size: int = Field(
        default=16, description="Loaded models kept for predictions."
    )
    inspect_max_values: int = Field(
        default=1_000,
        ge=0,
        description="Forward passes and weights list an array's values when it has at most this "
        "many (shape and min/max/mean/std always).",
    )
    max_upload_bytes: int = Field(default=1 << 30, description="Largest accepted upload.")
    max_storage_bytes_per_owner: int = Field(
        default=10 << 30,
        ge=0,
        description="Bytes of datasets and models one owner may keep; an upload that would pass "
        "it gets a 413 (quota_exceeded). 0: no quota.",
    )
    min_free_bytes: int = Field(
        default=1 << 30,
        ge=0,
        description="GET /readyz answers 503 while a local artifact store or the SQLite data "
        "directory has less free space than this. 0: no check.",
    )
    auth_enabled: bool = Field(
        default=True,
        description="Require an API key (Authorization: Bearer). Off: anyone who can reach the "
        "port acts as an admin; for local use only.",
    )
    max_active_jobs_per_owner: int = Field(
        default=20, ge=1, description="Queued + running jobs one owner may have; more get a 429."
    )
    # Limits on what one request may ask for (the table in docs/security.md).
    max_rows: int = Field(default=10_000_000, ge=1, description="Rows an uploaded table may have.")
    max_columns: int = Field(
        default=1_000,
        ge=1,
        description="Columns an uploaded table may have (each feature column is a model input).",
    )
    max_decompressed_bytes: int = Field(
        default=2 << 30,
        ge=1,
        description="Largest size a Parquet or NPZ upload may declare once decompressed.",
    )
    max_compression_ratio: float = Field(
        default=100,
        gt=1,
        description="How many times its own size a Parquet or NPZ upload may expand to once "
        "decompressed (checked above 8 MiB decompressed); a higher ratio is a decompression bomb.",
    )
    max_epochs: int = Field(default=10_000, ge=1, description="Most epochs one job may train.")
    max_layers: int = Field(default=100, ge=1, description="Most hidden layers in a network.")
    max_parameters: int = Field(
        default=50_000_000, ge=1, description="Most parameters (weights) a built network may have."
    )
    max_training_memory_mb: int = Field(
        default=4096,
        ge=1,
        description="Most memory (MiB) a job's training step may need by the estimate made at "
        "submit: weights, gradients and optimizer state, a batch's activations for the backward "
        "pass, and the input batch; a bigger job gets a 422 naming the layer that takes most.",
    )
    max_request_bytes: int = Field(
        default=8 << 20,
        ge=1,
        description="Largest request body other than an upload (job specs, prediction batches).",
    )
    max_repeats: int = Field(
        default=100, ge=1, description="Most repeats of one repeated job (`repeats`)."
    )
    repeat_tasks: int = Field(
        default=8,
        ge=1,
        description="A repeated job is split into at most this many worker tasks, each training "
        "its share of the repeats one after another (a task pays a process start).",
    )
    max_sweep_trials: int = Field(default=20, ge=1, description="Most trials (jobs) of one sweep.")
    max_json_depth: int = Field(
        default=32, ge=1, description="Deepest nesting of arrays and objects in a JSON body."
    )
    max_header_bytes: int = Field(
        default=64 << 10,
        ge=1024,
        description="Largest request line plus headers `dendrite api` and `serve` accept.",
    )
    # Slow clients and event streams (service/api/http.py, service/events.py).
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a request's line and headers may take to arrive, from its first byte "
        "(or from the connection); then a 408 and the connection is closed.",
    )
    body_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a request body may go without a byte; then a 408 and the connection "
        "is closed.",
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="Connections one API process holds at once; a request past it gets a 503.",
    )
    max_event_streams_per_owner: int = Field(
        default=20,
        ge=1,
        description="Event streams (GET /v1/jobs/{id}/events) one owner may hold open in one API "
        "process; one more gets a 429.",
    )
    events_key_check_interval: float = Field(
        default=5.0,
        gt=0,
        description="Seconds between checks that an event stream's API key is still valid; a "
        "stream whose key was revoked ends.",
    )
    metrics_exposure: Literal["open", "key", "off"] = Field(
        default="key",
        description="GET /metrics: open to anyone who reaches the port, only with a valid API key "
        "(key), or not served (off).",
    )
    events_poll_interval: float = Field(
        default=0.5,
        gt=0,
        description="Seconds between the database reads of a job's event stream (SSE).",
    )
    webhook_poll_interval: float = Field(
        default=1.0, gt=0, description="Seconds between looks for webhooks due to be sent."
    )
    webhook_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds one webhook POST may take in all (resolving, connecting, sending, "
        "the answer's headers and body); a slower receiver's attempt fails as `timed out`.",
    )
    webhook_allowed_hosts: str = Field(
        default="",
        description="Comma-separated networks (CIDR or single addresses: 10.0.0.0/8, ::1) and host "
        "names (hooks.internal, or .internal for every name under it) that webhooks may reach "
        "although they are loopback, private, link-local or otherwise not public; default: none.",
    )
    webhook_concurrency: int = Field(
        default=16, ge=1, description="Webhook POSTs one API process has in flight at once."
    )
    webhook_owner_concurrency: int = Field(
        default=4,
        ge=1,
        description="Of those, how many one owner's webhooks may hold (slow receivers of one "
        "owner never take every slot).",
    )
    webhook_max_response_bytes: int = Field(
        default=64 << 10,
        ge=0,
        description="Bytes of a receiver's answer body read (the rest is dropped unread).",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Key that encrypts webhook secrets in the database: 32 random bytes, base64 "
        "(a comma-separated list when rotating: the first encrypts, each decrypts). Default: a "
        "key generated once into DATA_DIR/secret.key (mode 0600). Set it in stack mode, the same "
        "on every API replica.",
    )
    webhook_max_attempts: int = Field(
        default=5, ge=1, description="POSTs of one webhook before it is marked failed."
    )
    webhook_retry_delay: float = Field(
        default=30.0,
        ge=0,
        description="Seconds before a failed webhook's first retry; doubled for each next one.",
    )
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto",
        description="Log lines as JSON or text; auto: text on a terminal, JSON otherwise.",
    )

    @field_validator("webhook_allowed_hosts")
    @classmethod
    def _allowed_hosts(cls, value: str) -> str:
        for entry in filter(None, (part.strip() for part in value.split(","))):
            if "/" in entry or ":" in entry or entry.replace(".", "").isdigit():
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    raise ValueError(
                        f"DENDRITE_WEBHOOK_ALLOWED_HOSTS: {entry!r} is not a network (10.0.0.0/8, "
                        "::1) or a host name"
                    ) from None
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None  # unset: see service/webhooks/keyring.py
        for part in filter(None, (p.strip() for p in value.get_secret_value().split(","))):
            padded = part.replace("+", "-").replace("/", "_") + "=" * (-len(part) % 4)
            try:
                size = len(base64.urlsafe_b64decode(padded))
            except ValueError:
                size = 0
            if size != 32:
                raise ValueError(
                    "DENDRITE_SECRET_KEY must be 32 random bytes in base64 (several: comma-"
                    'separated), e.g. from `python -c "import secrets; '
                    'print(secrets.token_urlsafe(32))"`'
                )
        return value

    @field_validator("artifacts_url")
    @classmethod
    def _supported_store(cls, url: str | None) -> str | None:
        # Writes rely on each store's atomic commit: a local rename, an S3 PUT or multipart upload.
        scheme, _, rest = (url or "").partition("://")
        if url and rest and scheme not in ("file", "s3"):
            raise ValueError(
                "DENDRITE_ARTIFACTS_URL must be a local directory or s3://bucket/prefix, "
                f"not {url!r}"
            )
        if scheme == "s3" and not rest.split("/")[0]:
            raise ValueError("DENDRITE_ARTIFACTS_URL names no bucket: use s3://bucket/prefix")
        return url

    @model_validator(mode="after")
    def _time_limit_below_visibility_timeout(self) -> "Settings":
        # Redis hands an unacknowledged message to another worker after the visibility timeout;
        # a job's delivery must end (limit + grace for its last epoch) before that.
        if self.job_time_limit + JOB_TIME_LIMIT_GRACE >= self.visibility_timeout:
            raise ValueError(
                f"DENDRITE_JOB_TIME_LIMIT ({self.job_time_limit} s) plus {JOB_TIME_LIMIT_GRACE} s "
                f"must stay below DENDRITE_VISIBILITY_TIMEOUT ({self.visibility_timeout} s)"
            )
        return self

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.embedded_database}"

    @property
    def embedded_database(self) -> Path | None:
        """The SQLite file in the data directory; None when DENDRITE_DATABASE_URL is set."""
        return None if self.database_url else (self.data_dir / "dendrite.db").resolve()

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url is None

    @property
    def celery_broker_url(self) -> str:
        # The host is a formality (the queue is in broker_dir); without one kombu logs a warning.
        return self.broker_url or "dendrite-fs://localhost//"

    @property
    def broker_dir(self) -> Path:
        return (self.data_dir / "broker").resolve()

    @property
    def artifacts_path(self) -> Path:
        return (self.artifacts_dir or self.data_dir / "artifacts").resolve()

    @property
    def artifacts_location(self) -> str:
        """The artifact store's URL (or local path), as fsspec opens it."""
        return self.artifacts_url or str(self.artifacts_path)


class _SettingsCache:
    """The process's settings, read from the environment once.

    `functools.lru_cache` would let a read that began before `cache_clear()` store its stale
    result after it (a background task reading settings while a test or a reload changes the
    environment); here a read and a clear take the same lock, so after `cache_clear()` returns
    every read sees the environment as it is then.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: Settings | None = None

    def __call__(self) -> Settings:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = Settings()
                value = self._value
        return value

    def cache_clear(self) -> None:
        with self._lock:
            self._value = None


get_settings = _SettingsCache()
