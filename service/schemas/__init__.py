"""Request and response bodies: the OpenAPI contract."""

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from service.schemas import examples
from service.schemas.network import EarlyStopping, Network, Optimizer

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class ErrorBody(BaseModel):
    error: str = Field(description="Machine-readable kind, e.g. invalid_input or not_found.")
    detail: str = Field(description="What is wrong and how to fix it.")
    field: str | None = Field(default=None, description="JSON pointer or column name at fault.")


class Dependents(BaseModel):
    count: int
    ids: list[str] = Field(description="The newest first; at most 20.")


class DatasetConflict(ErrorBody):
    dependents: dict[Literal["jobs", "models", "sweeps"], Dependents] | None = Field(
        default=None,
        description="What depends on the dataset and would be deleted with it (cascade=true).",
    )


# --- datasets -------------------------------------------------------------------------------


class ColumnRead(BaseModel):
    name: str
    dtype: str = Field(
        description="'float', 'integer', 'string' or 'boolean' (tabular); numpy dtype (NPZ)."
    )
    missing: int = 0
    shape: list[int] | None = Field(default=None, description="NPZ arrays: the array's shape.")
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    distinct: int | None = Field(default=None, description="Number of distinct values.")
    values: list[Any] | None = Field(
        default=None,
        description="Distinct values with their counts, for string columns and labels.",
    )


class DatasetRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    format: Literal["csv", "parquet", "npz"]
    size_bytes: int
    sha256: str
    rows: int
    columns: list[ColumnRead]
    created_at: datetime


class DatasetPreview(BaseModel):
    dataset_id: str
    rows: list[dict[str, Any]]


# --- jobs -----------------------------------------------------------------------------------


class Preprocessing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    normalize: bool = Field(
        default=True, description="Standardize numeric features (mean 0, std 1) inside the model."
    )
    missing: Literal["error", "drop", "mean"] = Field(
        default="error",
        description="Rows with missing values: reject the job (error), drop them, or fill them "
        "with the column mean (numbers) / most frequent value (strings).",
    )


class Training(BaseModel):
    model_config = ConfigDict(extra="forbid")

    optimizer: Optimizer = Field(default_factory=Optimizer)
    loss: str | None = Field(
        default=None,
        description="Default: mean_squared_error (regression), categorical_crossentropy "
        "(classification).",
    )
    metrics: list[str] | None = Field(
        default=None, description="Default: ['mae'] (regression), ['accuracy'] (classification)."
    )
    epochs: int | None = Field(
        default=None,
        gt=0,
        description="Default: 100 (regression), 10 (classification). At most "
        "DENDRITE_MAX_EPOCHS (default 10000).",
    )
    batch_size: int = Field(default=32, gt=0, le=65536)
    validation_split: float = Field(
        default=0.3,
        ge=0.0,
        lt=1.0,
        description="Fraction of the training rows held out for validation. Rows are shuffled "
        "with the seed first (Keras' own validation_split would take the last rows unshuffled).",
    )
    test_split: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Fraction of rows held out for the final evaluation. NPZ files with "
        "x_test/y_test use those instead.",
    )
    early_stopping: EarlyStopping | None = None
    seed: int | None = Field(
        default=None,
        ge=0,
        lt=2**31,
        description="Default: drawn at submit and recorded on the job.",
    )
    diagnostics: bool = Field(
        default=True,
        description="After every epoch, measure each layer's kernel gradient norm and its dead "
        "(ReLU) or saturated (sigmoid/tanh) units on a fixed probe batch, and flag vanishing or "
        "exploding gradients (GET /v1/jobs/{id}/diagnostics). One extra backward pass per epoch.",
    )

    @model_validator(mode="after")
    def _splits_leave_training_rows(self) -> "Training":
        if self.validation_split + self.test_split >= 0.95:
            raise ValueError(
                "validation_split + test_split must leave at least 5% of rows to train on"
            )
        return self


def _no_nul(value: str) -> str:
    """Looked up in the database, where PostgreSQL cannot take a NUL character at all."""
    if "\x00" in value:
        raise ValueError("holds a NUL character (\\u0000); no id or name contains one")
    return value


_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


def _http_url(value: str) -> str:
    """An http(s) URL, normalized. Kept as a string: pydantic validates a copied HttpUrl again,
    and a URL that normalization made longer than its limit would fail then (found by fuzzing)."""
    try:
        url = str(_HTTP_URL.validate_python(value))
    except ValidationError as error:
        raise ValueError(error.errors()[0]["msg"]) from None
    if len(url) > 2083:
        raise ValueError("URL should have at most 2083 characters")
    return url


def _callback_url(value: str) -> str:
    """A webhook target: an http(s) URL without credentials (the signature authenticates)."""
    url = _http_url(value)
    parsed = _HTTP_URL.validate_python(url)
    if parsed.username or parsed.password:
        raise ValueError(
            "a callback URL must not carry credentials (user:password@): receivers authenticate "
            "webhooks by their X-Dendrite-Signature"
        )
    return url


class JobCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [examples.CONCRETE_REGRESSION, examples.MNIST_CLASSIFIER]},
    )

    dataset_id: Annotated[str, AfterValidator(_no_nul)] = Field(
        description="The dataset's id, or the name of your newest dataset with that name."
    )
    task: Literal["regression", "classification"]
    target: str | list[str] = Field(
        description="Target column (a list for multi-output regression); for NPZ: 'y'."
    )
    features: list[str] | None = Field(default=None, description="Default: every other column.")
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    network: Network
    training: Training = Field(default_factory=Training)
    device: Literal["auto", "cpu", "gpu"] = "auto"
    repeats: int = Field(
        default=1,
        ge=1,
        description="Train this many fresh models, each on a new random train/test split (needs "
        "a test split), and report each one's test metrics and their mean and std. At most "
        "DENDRITE_MAX_REPEATS (default 100).",
    )
    callback_url: Annotated[str, AfterValidator(_callback_url)] | None = Field(
        default=None,
        max_length=2083,
        json_schema_extra={"format": "uri"},
        description="When the job ends (succeeded, failed or cancelled), dendrite POSTs its final "
        "state (the job as GET /v1/jobs/{id} shows it) here, signed with your webhook secret "
        "(GET /v1/webhooks/secret). http or https, without user:password@. Only public "
        "addresses are reached (the server's DENDRITE_WEBHOOK_ALLOWED_HOSTS may permit others).",
        examples=["https://example.com/hooks/dendrite"],
    )


class LayerSummary(BaseModel):
    name: str
    type: str
    output_shape: list[int | None]
    parameters: int


class TrainingMemory(BaseModel):
    """What one training step needs, estimated at submit and held to
    DENDRITE_MAX_TRAINING_MEMORY_MB (float32 values; activations counted for the backward pass)."""

    total_mb: float
    weights_mb: float = Field(description="Weights, their gradients and the optimizer's state.")
    activations_mb: float = Field(
        description="Every layer's outputs for one batch, and their gradients."
    )
    input_mb: float
    batch_size: int = Field(description="The batch as trained: at most the dataset's rows.")
    limit_mb: int


class SpecSummary(BaseModel):
    valid: bool = True
    inputs: list[str]
    layers: list[LayerSummary]
    parameters: int
    trainable_parameters: int
    loss: str
    metrics: list[str]
    epochs: int
    output_units: int
    labels: list[Any] | None = None
    training_memory: TrainingMemory | None = None


class Progress(BaseModel):
    epoch: int
    epochs: int


PLOT_KINDS = ("learning-curves", "confusion-matrix", "gradient-norms", "predicted-vs-actual")


class JobLinks(BaseModel):
    history: str
    events: str
    diagnostics: str
    page: str = Field(description="An HTML page with the plots, updated live while it trains.")
    plots: dict[str, str] = Field(description="The plots that apply to the job's task, by name.")

    @classmethod
    def for_job(cls, job_id: str, task: str) -> "JobLinks":
        base = f"/v1/jobs/{job_id}"
        skip = "predicted-vs-actual" if task == "classification" else "confusion-matrix"
        plots = {
            f"{kind}.{fmt}": f"{base}/plots/{kind}.{fmt}"
            for kind in PLOT_KINDS
            if kind != skip
            for fmt in ("png", "svg")
        }
        return cls(
            history=f"{base}/history",
            events=f"{base}/events",
            diagnostics=f"{base}/diagnostics",
            page=f"{base}/page",
            plots=plots,
        )


class JobRead(BaseModel):
    id: str
    dataset_id: str
    task: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    progress: Progress
    latest_metrics: dict[str, float] | None
    error: str | None
    device: str
    device_used: str | None
    worker: str | None = Field(
        description="The Celery worker that runs (or last ran) the job; none while it is queued."
    )
    attempts: int = Field(
        description="Times a worker started the job and did not hand it back cleanly."
    )
    model_id: str | None
    links: JobLinks | None = Field(
        default=None, description="Where to read more about this job: history, plots, page."
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    timings: dict[str, float] | None = Field(
        default=None,
        description="Seconds per phase of training, once it ended: import (the worker process's "
        "TensorFlow import, before the job came), load, build, fit, epoch_writes (part of fit), "
        "evaluate, save.",
    )
    request: dict[str, Any] = Field(description="The request with every default filled in.")
    parent_id: str | None = Field(
        default=None, description="For a part of a repeated job: that job (it trains some repeats)."
    )
    sweep_id: str | None = Field(default=None, description="For a sweep's trial: the sweep.")
    repeats: "RepeatsSummary | None" = Field(
        default=None, description="For a repeated job: repeats done and their aggregate."
    )


class EpochRead(BaseModel):
    epoch: int
    seconds: float
    metrics: dict[str, float]


class HistoryRead(BaseModel):
    job_id: str
    epochs: list[EpochRead]
    total: int


# --- models ---------------------------------------------------------------------------------


class ModelRead(BaseModel):
    id: str
    job_id: str
    task: str
    input_schema: dict[str, Any]
    outputs: dict[str, Any]
    test_metrics: dict[str, float] | None
    parameters: int
    size_bytes: int
    created_at: datetime


# Most instances (rows) one prediction request may hold, as JSON or as CSV.
MAX_INSTANCES = 100_000


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [examples.CONCRETE_PREDICT]},
    )

    instances: list[dict[str, Any]] | list[Any] = Field(
        min_length=1,
        max_length=MAX_INSTANCES,
        description="Records {feature: raw value} (tabular models); nested arrays (NPZ models).",
    )


class PredictResponse(BaseModel):
    predictions: list[Any]


# --- diagnostics, plots, forward propagation and weights ---------------------------------------


class LayerDiagnostic(BaseModel):
    name: str
    type: str
    activation: str | None
    gradient_norm: float | None = Field(
        description="L2 norm of the loss gradient w.r.t. the kernel on the probe batch; null for "
        "a layer without a kernel, or one whose gradient is not finite."
    )
    gradient_finite: bool
    dead_fraction: float | None = Field(description="ReLU layers: share of dead units.")
    saturated_fraction: float | None = Field(
        description="sigmoid/tanh layers: share of saturated units."
    )


class DiagnosticFlag(BaseModel):
    kind: Literal["vanishing", "exploding"]
    rule: str = Field(description="The rule that raised the flag.")
    detail: str = Field(description="The numbers that broke the rule.")
    layers: list[str]


class EpochDiagnosticRead(BaseModel):
    epoch: int
    first_to_output_ratio: float | None = Field(
        description="The first layer's kernel gradient norm / the output layer's."
    )
    layers: list[LayerDiagnostic]
    flags: list[DiagnosticFlag]


class DiagnosticsRead(BaseModel):
    job_id: str
    enabled: bool = Field(description="false when the job asked for training.diagnostics false.")
    rules: dict[str, str] = Field(description="How each number and flag is defined.")
    epochs: list[EpochDiagnosticRead]


class ForwardRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"instance": examples.CONCRETE_PREDICT["instances"][0]}]},
    )

    instance: dict[str, Any] | list[Any] = Field(
        description="One row, as in predict: {feature: raw value}, or a nested array (NPZ models)."
    )


class ArrayStats(BaseModel):
    shape: list[int]
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    values: Any | None = Field(
        default=None,
        description="The values, nested as `shape`; null when there are more than "
        "DENDRITE_INSPECT_MAX_VALUES of them (or they are text: then see `text`).",
    )
    text: list[str] | None = Field(default=None, description="Text values (string inputs).")


class LayerOutput(BaseModel):
    name: str
    type: str
    activation: str | None
    output: ArrayStats = Field(description="The layer's output for the row (no batch axis).")


class ForwardResponse(BaseModel):
    model_id: str
    layers: list[LayerOutput] = Field(description="Inputs first, then every layer in order.")


class WeightRead(BaseModel):
    name: str = Field(description="e.g. kernel, bias, gamma, mean.")
    trainable: bool
    stats: ArrayStats


class LayerWeights(BaseModel):
    name: str
    type: str
    activation: str | None
    parameters: int
    weights: list[WeightRead]


class WeightsResponse(BaseModel):
    model_id: str
    max_values: int = Field(description="Values are listed for weights with at most this many.")
    layers: list[LayerWeights]


# --- repeated experiments and sweeps ----------------------------------------------------------


class MetricAggregate(BaseModel):
    mean: float
    std: float = Field(description="Population standard deviation (ddof 0, as numpy.std).")
    min: float
    max: float
    count: int


class RepeatsSummary(BaseModel):
    requested: int
    succeeded: int
    failed: int
    cancelled: int
    test_metrics: dict[str, MetricAggregate] = Field(
        description="Per test metric, over the repeats that succeeded."
    )


JobRead.model_rebuild()


class RepeatRead(BaseModel):
    index: int
    seed: int = Field(description="Seeds this repeat's split, initialization and shuffles.")
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    part_job_id: str = Field(description="The part (a job) that trains this repeat.")
    epochs: int
    metrics: dict[str, float] | None = Field(description="The last epoch's losses and metrics.")
    test_metrics: dict[str, float] | None
    seconds: float | None
    finished_at: datetime | None


class RepeatsRead(BaseModel):
    job_id: str
    summary: RepeatsSummary
    items: list[RepeatRead]


class Range(BaseModel):
    """Random search: a value drawn between `min` and `max` (log-uniformly with `log`)."""

    model_config = ConfigDict(extra="forbid")

    min: float
    max: float
    log: bool = False
    integer: bool = Field(default=False, description="Round to a whole number.")

    @model_validator(mode="after")
    def _ordered(self) -> "Range":
        if not self.min < self.max:
            raise ValueError("min must be below max")
        if self.log and self.min <= 0:
            raise ValueError("a log range needs min > 0")
        return self


class SweepCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [examples.CONCRETE_SWEEP]}
    )

    base: JobCreate = Field(description="The job request every trial starts from.")
    search: Literal["grid", "random"] = Field(
        default="grid",
        description="grid: every combination of the listed values; random: `max_trials` draws.",
    )
    parameters: dict[str, list[Any] | Range] = Field(
        min_length=1,
        max_length=16,
        description="Field path -> values (grid and random) or a Range (random only). Paths "
        "are dotted names into the job request, with [*] for every item of a list or [n] for "
        "one: `training.optimizer.learning_rate`, `training.batch_size`, `training.epochs`, "
        "`network.layers[*].units`, `network.layers[0].activation`, or `network.layers` whose "
        "values are whole layer lists (to vary the layer count). Applied in the order given.",
    )
    max_trials: int | None = Field(
        default=None,
        ge=1,
        description="Random: trials to draw (default 10). Grid: a ceiling on the combinations. "
        "At most DENDRITE_MAX_SWEEP_TRIALS (default 20); each trial is a job and counts "
        "towards your queued + running jobs.",
    )
    metric: str | None = Field(
        default=None,
        description="What ranks the trials: a logged name (`loss`, `val_loss`, `val_mae`, ...; "
        "the last epoch's value) or `test_<name>` (the model's test metrics). Default: "
        "val_loss with a validation split, else test_loss with a test split, else loss.",
    )
    direction: Literal["min", "max"] | None = Field(
        default=None, description="Default: max for accuracy-like metrics, else min."
    )
    seed: int | None = Field(
        default=None, ge=0, lt=2**31, description="Seeds the random search's draws."
    )


class TrialRead(BaseModel):
    rank: int | None = Field(description="1 is best; none until the trial has its metric.")
    trial: int
    job_id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    parameters: dict[str, Any]
    value: float | None = Field(description="The sweep's metric for this trial.")
    model_id: str | None
    latest_metrics: dict[str, float] | None
    test_metrics: dict[str, float] | None
    error: str | None


class SweepRead(BaseModel):
    id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    search: str
    metric: str
    direction: str
    trials: list[TrialRead] = Field(description="Ranked: best first, then unranked by number.")
    best: TrialRead | None = Field(description="The best trial so far; its model_id predicts.")
    created_at: datetime
    request: dict[str, Any]


# --- webhooks -------------------------------------------------------------------------------


class WebhookSecretRead(BaseModel):
    secret: str = Field(
        description="Your key for verifying webhook signatures: X-Dendrite-Signature is "
        "'sha256=' + hex HMAC-SHA256 of '<X-Dendrite-Timestamp>.<body>' under it."
    )
    created_at: datetime


class WebhookAttemptRead(BaseModel):
    number: int
    started_at: datetime
    seconds: float
    status_code: int | None = Field(description="The receiver's answer; none if there was none.")
    error: str | None = Field(description="Why the attempt failed; none when it was a 2xx.")


class WebhookDeliveryRead(BaseModel):
    id: str = Field(description="Sent as X-Dendrite-Delivery: the same on every attempt.")
    job_id: str
    url: str
    state: Literal["waiting", "pending", "delivered", "failed"] = Field(
        description="waiting: the job has not ended; pending: due at next_attempt_at; "
        "delivered: a 2xx came back; failed: every attempt failed."
    )
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    attempts: list[WebhookAttemptRead]
