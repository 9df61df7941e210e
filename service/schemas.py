"""Request and response bodies: the OpenAPI contract."""

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from service import examples
from service.spec import EarlyStopping, Network, Optimizer

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


class LayerSummary(BaseModel):
    name: str
    type: str
    output_shape: list[int | None]
    parameters: int


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


class Progress(BaseModel):
    epoch: int
    epochs: int


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
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    request: dict[str, Any] = Field(description="The request with every default filled in.")


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


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [examples.CONCRETE_PREDICT]},
    )

    instances: list[dict[str, Any]] | list[Any] = Field(
        min_length=1,
        max_length=100_000,
        description="Records {feature: raw value} (tabular models); nested arrays (NPZ models).",
    )


class PredictResponse(BaseModel):
    predictions: list[Any]
