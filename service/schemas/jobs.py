"""Jobs: the training request (data, preprocessing, network, training) and the job as read."""

from datetime import datetime
from typing import Annotated, Any, Literal

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
from service.schemas.registry import ALIAS_PATTERN, NAME_PATTERN
from service.schemas.repeats import RepeatsSummary


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
        "exploding gradients and dead layers (GET /v1/jobs/{id}/diagnostics). One extra "
        "backward pass per epoch.",
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


# An id or name that is looked up: never with a NUL character.
LookupText = Annotated[str, AfterValidator(_no_nul)]

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


# A webhook target as every request that takes one checks it.
CallbackURL = Annotated[str, AfterValidator(_callback_url)]


class Register(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="The registered model's name.")
    alias: str | None = Field(
        default=None,
        pattern=ALIAS_PATTERN,
        description="e.g. production: moved to the new version.",
    )


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
    callback_url: CallbackURL | None = Field(
        default=None,
        max_length=2083,
        json_schema_extra={"format": "uri"},
        description="When the job ends (succeeded, failed or cancelled), dendrite POSTs its final "
        "state (the job as GET /v1/jobs/{id} shows it) here, signed with your webhook secret "
        "(GET /v1/webhooks/secret). http or https, without user:password@. Only public "
        "addresses are reached (the server's DENDRITE_WEBHOOK_ALLOWED_HOSTS may permit others).",
        examples=["https://example.com/hooks/dendrite"],
    )
    register_as: Register | None = Field(
        default=None,
        description="When the job succeeds, register its model as the next version of this "
        "registered model (created if you have none by that name), and point `alias` at it if "
        "given. Single jobs only (not repeated jobs or sweeps).",
    )

    @model_validator(mode="after")
    def _register_single_jobs(self) -> "JobCreate":
        if self.register_as is not None and self.repeats > 1:
            raise ValueError("register_as applies to single jobs, not to repeated ones")
        return self


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
        "TensorFlow import, before the job came; 0 when the process had trained a job before), "
        "load, build, trace (compiling the training step; about 0 when the process kept a "
        "traced network of the same shape from an earlier job), fit, first_epoch and "
        "epoch_writes (both part of fit), evaluate, save.",
    )
    request: dict[str, Any] = Field(description="The request with every default filled in.")
    parent_id: str | None = Field(
        default=None, description="For a part of a repeated job: that job (it trains some repeats)."
    )
    sweep_id: str | None = Field(default=None, description="For a sweep's trial: the sweep.")
    repeats: RepeatsSummary | None = Field(
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
