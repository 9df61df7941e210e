"""Generated from openapi.json by scripts/generate_client.py: do not edit."""

from __future__ import annotations
from pydantic import AnyUrl, AwareDatetime, BaseModel, ConfigDict, Field, RootModel
from typing import Any, Literal
from enum import StrEnum


class ActivationLayer(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    activation: str = Field(
        ...,
        description="A Keras activation by name: linear, sigmoid, tanh, relu, relu6, leaky_relu, elu, selu, celu, gelu, silu, swish, mish, softmax, log_softmax, softplus, softsign, hard_sigmoid, hard_silu, hard_swish, hard_tanh, log_sigmoid, exponential, sparse_plus, squareplus, tanh_shrink, hard_shrink, soft_shrink, sparsemax.",
        examples=["relu"],
        title="Activation",
    )
    type: Literal["activation"] = Field(..., title="Type")


class AliasMoveRead(BaseModel):
    alias: str = Field(..., title="Alias")
    from_version: int | None = Field(
        ..., description="None: the alias was new.", title="From Version"
    )
    moved_at: AwareDatetime = Field(..., title="Moved At")
    moved_by: str = Field(..., title="Moved By")
    to_version: int | None = Field(
        ..., description="None: the alias was removed.", title="To Version"
    )


class AliasSet(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    version: int = Field(
        ...,
        description="The version the alias points at from now on.",
        ge=1,
        title="Version",
    )


class ArrayStats(BaseModel):
    max: float | None = Field(..., title="Max")
    mean: float | None = Field(..., title="Mean")
    min: float | None = Field(..., title="Min")
    shape: list[int] = Field(..., title="Shape")
    std: float | None = Field(..., title="Std")
    text: list[str] | None = Field(
        None, description="Text values (string inputs).", title="Text"
    )
    values: Any = Field(
        None,
        description="The values, nested as `shape`; null when there are more than DENDRITE_INSPECT_MAX_VALUES of them (or they are text: then see `text`).",
        title="Values",
    )


class Padding(StrEnum):
    valid = "valid"
    same = "same"


class PoolSize(RootModel[int]):
    root: int = Field(2, gt=0, title="Pool Size")


class PoolSize1Item(RootModel[int]):
    root: int = Field(..., gt=0)


class PoolSize1(RootModel[list[PoolSize1Item]]):
    root: list[PoolSize1Item] = Field(
        2, max_length=2, min_length=2, title="Pool Size", validate_default=True
    )


class Strides(RootModel[int]):
    root: int = Field(..., gt=0, title="Strides")


class Strides1Item(RootModel[int]):
    root: int = Field(..., gt=0)


class Strides1(RootModel[list[Strides1Item]]):
    root: list[Strides1Item] = Field(..., max_length=2, min_length=2, title="Strides")


class AveragePooling2D(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    padding: Padding | None = Field(Padding.valid, title="Padding")
    pool_size: PoolSize | PoolSize1 | None = Field(
        2, title="Pool Size", validate_default=True
    )
    strides: Strides | Strides1 | None = Field(None, title="Strides")
    type: Literal["average_pooling2d"] = Field(..., title="Type")


class BatchLinks(BaseModel):
    errors: str = Field(..., title="Errors")
    events: str = Field(..., title="Events")
    result: str = Field(..., title="Result")


class BatchNormalization(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    epsilon: float | None = Field(0.001, gt=0.0, title="Epsilon")
    momentum: float | None = Field(0.99, gt=0.0, lt=1.0, title="Momentum")
    type: Literal["batch_normalization"] = Field(..., title="Type")


class Array(RootModel[str]):
    root: str = Field(
        ...,
        description="For an NPZ dataset: the array of samples to score (default `x`, else `x_test`). Its labels (`y` / `y_test`), if present, give the metrics.",
        max_length=64,
        title="Array",
    )


class CallbackUrl(RootModel[AnyUrl]):
    root: AnyUrl = Field(
        ...,
        description="When the job ends, dendrite POSTs its final state (as GET /v1/batch-predictions/{id} shows it) here, signed as training jobs' webhooks are.",
        title="Callback Url",
    )


class OutputFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"
    jsonl = "jsonl"


class BatchPredictionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    array: Array | None = Field(
        None,
        description="For an NPZ dataset: the array of samples to score (default `x`, else `x_test`). Its labels (`y` / `y_test`), if present, give the metrics.",
        title="Array",
    )
    callback_url: CallbackUrl | None = Field(
        None,
        description="When the job ends, dendrite POSTs its final state (as GET /v1/batch-predictions/{id} shows it) here, signed as training jobs' webhooks are.",
        title="Callback Url",
    )
    chunk_rows: int | None = Field(
        10000,
        description="Rows read, scored and written at a time: the worker's memory holds one chunk, whatever the dataset's size; progress moves chunk by chunk.",
        ge=100,
        le=100000,
        title="Chunk Rows",
    )
    dataset_id: str = Field(
        ...,
        description="The dataset to score: its id or name.",
        max_length=255,
        min_length=1,
        title="Dataset Id",
    )
    model: str = Field(
        ...,
        description="The model: its id, `name@alias` or `name/versions/n`. A reference is resolved when the job is submitted: moving the alias later does not change what it scores with.",
        max_length=255,
        min_length=1,
        title="Model",
    )
    output_format: OutputFormat | None = Field(
        OutputFormat.csv,
        description="The result file's format: csv, parquet or jsonl (one JSON object per line).",
        title="Output Format",
    )
    passthrough_columns: list[str] | None = Field(
        None,
        description="Columns of the dataset copied into each result row beside the prediction (an id, say), in this order. Tables only.",
        max_length=100,
        title="Passthrough Columns",
    )


class Status(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class BatchProgress(BaseModel):
    rows_done: int = Field(
        ..., description="Rows read so far, scored or not.", title="Rows Done"
    )
    rows_failed: int = Field(
        ...,
        description="Rows that could not be scored (see the errors file).",
        title="Rows Failed",
    )
    rows_total: int = Field(..., title="Rows Total")


class Name(RootModel[str]):
    root: str = Field(..., examples=["concrete"], max_length=255, title="Name")


class BodyCreateDatasetV1DatasetsPost(BaseModel):
    file: str = Field(
        ...,
        description="A CSV, Parquet or NPZ file.",
        json_schema_extra={"contentMediaType": "application/octet-stream"},
        title="File",
    )
    name: Name | None = Field(None, examples=["concrete"], title="Name")


class ColumnRead(BaseModel):
    distinct: int | None = Field(
        None, description="Number of distinct values.", title="Distinct"
    )
    dtype: str = Field(
        ...,
        description="'float', 'integer', 'string' or 'boolean' (tabular); numpy dtype (NPZ).",
        title="Dtype",
    )
    max: float | None = Field(None, title="Max")
    mean: float | None = Field(None, title="Mean")
    min: float | None = Field(None, title="Min")
    missing: int | None = Field(0, title="Missing")
    name: str = Field(..., title="Name")
    shape: list[int] | None = Field(
        None, description="NPZ arrays: the array's shape.", title="Shape"
    )
    std: float | None = Field(None, title="Std")
    values: list[Any] | None = Field(
        None,
        description="Distinct values with their counts, for string columns and labels.",
        title="Values",
    )


class KernelSize(RootModel[int]):
    root: int = Field(3, gt=0, title="Kernel Size")


class KernelSize1Item(RootModel[int]):
    root: int = Field(..., gt=0)


class KernelSize1(RootModel[list[KernelSize1Item]]):
    root: list[KernelSize1Item] = Field(
        3, max_length=2, min_length=2, title="Kernel Size", validate_default=True
    )


class Strides2(RootModel[int]):
    root: int = Field(1, gt=0, title="Strides")


class Strides3Item(RootModel[int]):
    root: int = Field(..., gt=0)


class Strides3(RootModel[list[Strides3Item]]):
    root: list[Strides3Item] = Field(
        1, max_length=2, min_length=2, title="Strides", validate_default=True
    )


class Conv2D(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    activation: str | None = Field(
        "relu",
        description="A Keras activation by name: linear, sigmoid, tanh, relu, relu6, leaky_relu, elu, selu, celu, gelu, silu, swish, mish, softmax, log_softmax, softplus, softsign, hard_sigmoid, hard_silu, hard_swish, hard_tanh, log_sigmoid, exponential, sparse_plus, squareplus, tanh_shrink, hard_shrink, soft_shrink, sparsemax.",
        examples=["relu"],
        title="Activation",
    )
    filters: int = Field(..., gt=0, le=4096, title="Filters")
    kernel_size: KernelSize | KernelSize1 | None = Field(
        3, title="Kernel Size", validate_default=True
    )
    padding: Padding | None = Field(Padding.valid, title="Padding")
    strides: Strides2 | Strides3 | None = Field(
        1, title="Strides", validate_default=True
    )
    type: Literal["conv2d"] = Field(..., title="Type")


class DatasetPreview(BaseModel):
    dataset_id: str = Field(..., title="Dataset Id")
    rows: list[dict[str, Any]] = Field(..., title="Rows")


class Format(StrEnum):
    csv = "csv"
    parquet = "parquet"
    npz = "npz"


class DatasetRead(BaseModel):
    columns: list[ColumnRead] = Field(..., title="Columns")
    created_at: AwareDatetime = Field(..., title="Created At")
    format: Format = Field(..., title="Format")
    id: str = Field(..., title="Id")
    name: str = Field(..., title="Name")
    rows: int = Field(..., title="Rows")
    sha256: str = Field(..., title="Sha256")
    size_bytes: int = Field(..., title="Size Bytes")


class Dense(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    activation: str | None = Field(
        "relu",
        description="A Keras activation by name: linear, sigmoid, tanh, relu, relu6, leaky_relu, elu, selu, celu, gelu, silu, swish, mish, softmax, log_softmax, softplus, softsign, hard_sigmoid, hard_silu, hard_swish, hard_tanh, log_sigmoid, exponential, sparse_plus, squareplus, tanh_shrink, hard_shrink, soft_shrink, sparsemax.",
        examples=["relu"],
        title="Activation",
    )
    type: Literal["dense"] = Field(..., title="Type")
    units: int = Field(
        ..., description="Number of neurons.", gt=0, le=65536, title="Units"
    )
    use_bias: bool | None = Field(True, title="Use Bias")


class Dependents(BaseModel):
    count: int = Field(..., title="Count")
    ids: list[str] = Field(
        ..., description="The newest first; at most 20.", title="Ids"
    )


class Kind(StrEnum):
    dead = "dead"
    vanishing = "vanishing"
    exploding = "exploding"


class DiagnosticFlag(BaseModel):
    detail: str = Field(
        ..., description="The numbers that broke the rule.", title="Detail"
    )
    kind: Kind = Field(..., title="Kind")
    layers: list[str] = Field(..., title="Layers")
    rule: str = Field(..., description="The rule that raised the flag.", title="Rule")


class Dropout(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    rate: float = Field(
        ...,
        description="Fraction of inputs dropped, in [0, 1).",
        ge=0.0,
        lt=1.0,
        title="Rate",
    )
    type: Literal["dropout"] = Field(..., title="Type")


class EarlyStopping(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    min_delta: float | None = Field(0.0, ge=0.0, title="Min Delta")
    monitor: str | None = Field("val_loss", title="Monitor")
    patience: int | None = Field(10, ge=0, title="Patience")
    restore_best_weights: bool | None = Field(True, title="Restore Best Weights")


class EpochRead(BaseModel):
    epoch: int = Field(..., title="Epoch")
    metrics: dict[str, float] = Field(..., title="Metrics")
    seconds: float = Field(..., title="Seconds")


class ErrorBody(BaseModel):
    detail: str = Field(
        ..., description="What is wrong and how to fix it.", title="Detail"
    )
    error: str = Field(
        ...,
        description="Machine-readable kind, e.g. invalid_input or not_found.",
        title="Error",
    )
    field: str | None = Field(
        None, description="JSON pointer or column name at fault.", title="Field"
    )


class Flatten(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    type: Literal["flatten"] = Field(..., title="Type")


class ForwardRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    instance: dict[str, Any] | list[Any] = Field(
        ...,
        description="One row, as in predict: {feature: raw value}, or a nested array (NPZ models).",
        title="Instance",
    )


class GlobalAveragePooling2D(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    type: Literal["global_average_pooling2d"] = Field(..., title="Type")


class HistoryRead(BaseModel):
    epochs: list[EpochRead] = Field(..., title="Epochs")
    job_id: str = Field(..., title="Job Id")
    total: int = Field(..., title="Total")


class InferenceError(BaseModel):
    error: str = Field(..., title="Error")


class CallbackUrl1(RootModel[AnyUrl]):
    root: AnyUrl = Field(
        ...,
        description="When the job ends (succeeded, failed or cancelled), dendrite POSTs its final state (the job as GET /v1/jobs/{id} shows it) here, signed with your webhook secret (GET /v1/webhooks/secret). http or https, without user:password@. Only public addresses are reached (the server's DENDRITE_WEBHOOK_ALLOWED_HOSTS may permit others).",
        examples=["https://example.com/hooks/dendrite"],
        title="Callback Url",
    )


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"


class Task(StrEnum):
    regression = "regression"
    classification = "classification"


class JobLinks(BaseModel):
    diagnostics: str = Field(..., title="Diagnostics")
    events: str = Field(..., title="Events")
    history: str = Field(..., title="History")
    page: str = Field(
        ...,
        description="An HTML page with the plots, updated live while it trains.",
        title="Page",
    )
    plots: dict[str, str] = Field(
        ...,
        description="The plots that apply to the job's task, by name.",
        title="Plots",
    )


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class KeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    admin: bool | None = Field(
        False, description="An admin key sees every owner's things.", title="Admin"
    )
    owner: str = Field(
        ...,
        description="Who the key acts for: 1 to 64 letters, digits and '_.@-', starting with a letter or digit. Keys of one owner share its datasets, jobs and models.",
        max_length=64,
        min_length=1,
        title="Owner",
    )


class KeyCreated(BaseModel):
    created_at: AwareDatetime = Field(..., title="Created At")
    id: str = Field(..., title="Id")
    is_admin: bool = Field(..., title="Is Admin")
    key: str = Field(
        ...,
        description="The key itself. It is shown this once: dendrite keeps its hash.",
        title="Key",
    )
    last_used_at: AwareDatetime | None = Field(
        ..., description="Updated at most once a minute.", title="Last Used At"
    )
    owner: str = Field(..., title="Owner")
    prefix: str = Field(
        ...,
        description="The key's first characters, to tell keys apart.",
        title="Prefix",
    )
    revoked_at: AwareDatetime | None = Field(..., title="Revoked At")


class KeyRead(BaseModel):
    created_at: AwareDatetime = Field(..., title="Created At")
    id: str = Field(..., title="Id")
    is_admin: bool = Field(..., title="Is Admin")
    last_used_at: AwareDatetime | None = Field(
        ..., description="Updated at most once a minute.", title="Last Used At"
    )
    owner: str = Field(..., title="Owner")
    prefix: str = Field(
        ...,
        description="The key's first characters, to tell keys apart.",
        title="Prefix",
    )
    revoked_at: AwareDatetime | None = Field(..., title="Revoked At")


class LayerDiagnostic(BaseModel):
    activation: str | None = Field(..., title="Activation")
    dead_fraction: float | None = Field(
        ..., description="ReLU layers: share of dead units.", title="Dead Fraction"
    )
    gradient_finite: bool = Field(..., title="Gradient Finite")
    gradient_norm: float | None = Field(
        ...,
        description="L2 norm of the loss gradient w.r.t. the kernel on the probe batch; null for a layer without a kernel, or one whose gradient is not finite.",
        title="Gradient Norm",
    )
    name: str = Field(..., title="Name")
    saturated_fraction: float | None = Field(
        ...,
        description="sigmoid/tanh layers: share of saturated units.",
        title="Saturated Fraction",
    )
    type: str = Field(..., title="Type")


class LayerOutput(BaseModel):
    activation: str | None = Field(..., title="Activation")
    name: str = Field(..., title="Name")
    output: ArrayStats = Field(
        ..., description="The layer's output for the row (no batch axis)."
    )
    type: str = Field(..., title="Type")


class LayerSummary(BaseModel):
    name: str = Field(..., title="Name")
    output_shape: list[int | None] = Field(..., title="Output Shape")
    parameters: int = Field(..., title="Parameters")
    type: str = Field(..., title="Type")


class PoolSize2(RootModel[int]):
    root: int = Field(2, gt=0, title="Pool Size")


class PoolSize3Item(RootModel[int]):
    root: int = Field(..., gt=0)


class PoolSize3(RootModel[list[PoolSize3Item]]):
    root: list[PoolSize3Item] = Field(
        2, max_length=2, min_length=2, title="Pool Size", validate_default=True
    )


class Strides4(RootModel[int]):
    root: int = Field(..., gt=0, title="Strides")


class Strides5Item(RootModel[int]):
    root: int = Field(..., gt=0)


class Strides5(RootModel[list[Strides5Item]]):
    root: list[Strides5Item] = Field(..., max_length=2, min_length=2, title="Strides")


class MaxPooling2D(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    padding: Padding | None = Field(Padding.valid, title="Padding")
    pool_size: PoolSize2 | PoolSize3 | None = Field(
        2, title="Pool Size", validate_default=True
    )
    strides: Strides4 | Strides5 | None = Field(None, title="Strides")
    type: Literal["max_pooling2d"] = Field(..., title="Type")


class MetricAggregate(BaseModel):
    count: int = Field(..., title="Count")
    max: float = Field(..., title="Max")
    mean: float = Field(..., title="Mean")
    min: float = Field(..., title="Min")
    std: float = Field(
        ...,
        description="Population standard deviation (ddof 0, as numpy.std).",
        title="Std",
    )


class ModelRead(BaseModel):
    created_at: AwareDatetime = Field(..., title="Created At")
    id: str = Field(..., title="Id")
    input_schema: dict[str, Any] = Field(..., title="Input Schema")
    job_id: str = Field(..., title="Job Id")
    outputs: dict[str, Any] = Field(..., title="Outputs")
    parameters: int = Field(..., title="Parameters")
    size_bytes: int = Field(..., title="Size Bytes")
    task: str = Field(..., title="Task")
    test_metrics: dict[str, float] | None = Field(..., title="Test Metrics")


class Layers(
    RootModel[
        Dense
        | Dropout
        | BatchNormalization
        | Flatten
        | ActivationLayer
        | Conv2D
        | MaxPooling2D
        | AveragePooling2D
        | GlobalAveragePooling2D
    ]
):
    root: (
        Dense
        | Dropout
        | BatchNormalization
        | Flatten
        | ActivationLayer
        | Conv2D
        | MaxPooling2D
        | AveragePooling2D
        | GlobalAveragePooling2D
    ) = Field(..., discriminator="type")


class Network(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    layers: list[Layers] = Field(
        ...,
        description="At most DENDRITE_MAX_LAYERS (default 100) layers.",
        min_length=1,
        title="Layers",
    )
    output_activation: str | None = Field(
        None,
        description="Default: linear for regression, softmax for classification.",
        title="Output Activation",
    )


class Momentum(RootModel[float]):
    root: float = Field(
        ..., description="sgd and rmsprop only.", ge=0.0, lt=1.0, title="Momentum"
    )


class Name1(StrEnum):
    adam = "adam"
    adamw = "adamw"
    sgd = "sgd"
    rmsprop = "rmsprop"
    adagrad = "adagrad"
    adadelta = "adadelta"
    adamax = "adamax"
    nadam = "nadam"
    ftrl = "ftrl"
    lion = "lion"


class Optimizer(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    learning_rate: float | None = Field(0.001, gt=0.0, le=10.0, title="Learning Rate")
    momentum: Momentum | None = Field(
        None, description="sgd and rmsprop only.", title="Momentum"
    )
    name: Name1 | None = Field(Name1.adam, title="Name")


class PageDatasetRead(BaseModel):
    items: list[DatasetRead] = Field(..., title="Items")
    limit: int = Field(..., title="Limit")
    offset: int = Field(..., title="Offset")
    total: int = Field(..., title="Total")


class PageKeyRead(BaseModel):
    items: list[KeyRead] = Field(..., title="Items")
    limit: int = Field(..., title="Limit")
    offset: int = Field(..., title="Offset")
    total: int = Field(..., title="Total")


class PageModelRead(BaseModel):
    items: list[ModelRead] = Field(..., title="Items")
    limit: int = Field(..., title="Limit")
    offset: int = Field(..., title="Offset")
    total: int = Field(..., title="Total")


class PredictResponse(BaseModel):
    predictions: list[Any] = Field(..., title="Predictions")


class Missing(StrEnum):
    error = "error"
    drop = "drop"
    mean = "mean"


class Preprocessing(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    missing: Missing | None = Field(
        Missing.error,
        description="Rows with missing values: reject the job (error), drop them, or fill them with the column mean (numbers) / most frequent value (strings).",
        title="Missing",
    )
    normalize: bool | None = Field(
        True,
        description="Standardize numeric features (mean 0, std 1) inside the model.",
        title="Normalize",
    )


class Progress(BaseModel):
    epoch: int = Field(..., title="Epoch")
    epochs: int = Field(..., title="Epochs")


class Range(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    integer: bool | None = Field(
        False, description="Round to a whole number.", title="Integer"
    )
    log: bool | None = Field(False, title="Log")
    max: float = Field(..., title="Max")
    min: float = Field(..., title="Min")


class Alias(RootModel[str]):
    root: str = Field(
        ...,
        description="e.g. production: moved to the new version.",
        pattern="^[A-Za-z][A-Za-z0-9._-]{0,63}$",
        title="Alias",
    )


class Register(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    alias: Alias | None = Field(
        None, description="e.g. production: moved to the new version.", title="Alias"
    )
    name: str = Field(
        ...,
        description="The registered model's name.",
        pattern="^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
        title="Name",
    )


class Description(RootModel[str]):
    root: str = Field(..., max_length=2000, title="Description")


class RegisteredModelCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    description: Description | None = Field(None, title="Description")
    name: str = Field(
        ...,
        description="Unique among your registered models.",
        pattern="^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
        title="Name",
    )


class RegisteredModelRead(BaseModel):
    aliases: dict[str, int] = Field(
        ..., description="Each alias and the version it points at.", title="Aliases"
    )
    created_at: AwareDatetime = Field(..., title="Created At")
    description: str | None = Field(..., title="Description")
    latest_version: int | None = Field(..., title="Latest Version")
    name: str = Field(..., title="Name")


class RepeatRead(BaseModel):
    epochs: int = Field(..., title="Epochs")
    finished_at: AwareDatetime | None = Field(..., title="Finished At")
    index: int = Field(..., title="Index")
    metrics: dict[str, float] | None = Field(
        ..., description="The last epoch's losses and metrics.", title="Metrics"
    )
    part_job_id: str = Field(
        ...,
        description="The part (a job) that trains this repeat.",
        title="Part Job Id",
    )
    seconds: float | None = Field(..., title="Seconds")
    seed: int = Field(
        ...,
        description="Seeds this repeat's split, initialization and shuffles.",
        title="Seed",
    )
    status: Status = Field(..., title="Status")
    test_metrics: dict[str, float] | None = Field(..., title="Test Metrics")


class RepeatsSummary(BaseModel):
    cancelled: int = Field(..., title="Cancelled")
    failed: int = Field(..., title="Failed")
    requested: int = Field(..., title="Requested")
    succeeded: int = Field(..., title="Succeeded")
    test_metrics: dict[str, MetricAggregate] = Field(
        ...,
        description="Per test metric, over the repeats that succeeded.",
        title="Test Metrics",
    )


class Direction(StrEnum):
    min = "min"
    max = "max"


class MaxTrials(RootModel[int]):
    root: int = Field(
        ...,
        description="Random: trials to draw (default 10). Grid: a ceiling on the combinations. At most DENDRITE_MAX_SWEEP_TRIALS (default 20); each trial is a job and counts towards your queued + running jobs.",
        ge=1,
        title="Max Trials",
    )


class Search(StrEnum):
    grid = "grid"
    random = "random"


class Seed(RootModel[int]):
    root: int = Field(
        ...,
        description="Seeds the random search's draws.",
        ge=0,
        lt=2147483648,
        title="Seed",
    )


class Epochs(RootModel[int]):
    root: int = Field(
        ...,
        description="Default: 100 (regression), 10 (classification). At most DENDRITE_MAX_EPOCHS (default 10000).",
        gt=0,
        title="Epochs",
    )


class Seed1(RootModel[int]):
    root: int = Field(
        ...,
        description="Default: drawn at submit and recorded on the job.",
        ge=0,
        lt=2147483648,
        title="Seed",
    )


class Training(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    batch_size: int | None = Field(32, gt=0, le=65536, title="Batch Size")
    diagnostics: bool | None = Field(
        True,
        description="After every epoch, measure each layer's kernel gradient norm and its dead (ReLU) or saturated (sigmoid/tanh) units on a fixed probe batch, and flag vanishing or exploding gradients and dead layers (GET /v1/jobs/{id}/diagnostics). One extra backward pass per epoch.",
        title="Diagnostics",
    )
    early_stopping: EarlyStopping | None = None
    epochs: Epochs | None = Field(
        None,
        description="Default: 100 (regression), 10 (classification). At most DENDRITE_MAX_EPOCHS (default 10000).",
        title="Epochs",
    )
    loss: str | None = Field(
        None,
        description="Default: mean_squared_error (regression), categorical_crossentropy (classification).",
        title="Loss",
    )
    metrics: list[str] | None = Field(
        None,
        description="Default: ['mae'] (regression), ['accuracy'] (classification).",
        title="Metrics",
    )
    optimizer: Optimizer | None = None
    seed: Seed1 | None = Field(
        None,
        description="Default: drawn at submit and recorded on the job.",
        title="Seed",
    )
    test_split: float | None = Field(
        0.0,
        description="Fraction of rows held out for the final evaluation. NPZ files with x_test/y_test use those instead.",
        ge=0.0,
        lt=1.0,
        title="Test Split",
    )
    validation_split: float | None = Field(
        0.3,
        description="Fraction of the training rows held out for validation. Rows are shuffled with the seed first (Keras' own validation_split would take the last rows unshuffled).",
        ge=0.0,
        lt=1.0,
        title="Validation Split",
    )


class TrainingMemory(BaseModel):
    activations_mb: float = Field(
        ...,
        description="Every layer's outputs for one batch, and their gradients.",
        title="Activations Mb",
    )
    batch_size: int = Field(
        ...,
        description="The batch as trained: at most the dataset's rows.",
        title="Batch Size",
    )
    input_mb: float = Field(..., title="Input Mb")
    limit_mb: int = Field(..., title="Limit Mb")
    total_mb: float = Field(..., title="Total Mb")
    weights_mb: float = Field(
        ...,
        description="Weights, their gradients and the optimizer's state.",
        title="Weights Mb",
    )


class TrialRead(BaseModel):
    error: str | None = Field(..., title="Error")
    job_id: str = Field(..., title="Job Id")
    latest_metrics: dict[str, float] | None = Field(..., title="Latest Metrics")
    model_id: str | None = Field(..., title="Model Id")
    parameters: dict[str, Any] = Field(..., title="Parameters")
    rank: int | None = Field(
        ..., description="1 is best; none until the trial has its metric.", title="Rank"
    )
    status: Status = Field(..., title="Status")
    test_metrics: dict[str, float] | None = Field(..., title="Test Metrics")
    trial: int = Field(..., title="Trial")
    value: float | None = Field(
        ..., description="The sweep's metric for this trial.", title="Value"
    )


class VersionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    model_id: str = Field(
        ...,
        description="A trained model's id.",
        max_length=64,
        min_length=1,
        title="Model Id",
    )


class VersionRead(BaseModel):
    aliases: list[str] = Field(..., title="Aliases")
    created_at: AwareDatetime = Field(..., title="Created At")
    created_by: str = Field(..., title="Created By")
    lineage: dict[str, Any] = Field(
        ...,
        description="Where the model came from: dataset (id, name, sha256), job (id, request, seed, validation and test split), final and test metrics, epochs, training seconds, Keras and TensorFlow versions.",
        title="Lineage",
    )
    model_id: str = Field(..., title="Model Id")
    name: str = Field(..., title="Name")
    version: int = Field(..., title="Version")


class WebhookAttemptRead(BaseModel):
    error: str | None = Field(
        ...,
        description="Why the attempt failed; none when it was a 2xx.",
        title="Error",
    )
    number: int = Field(..., title="Number")
    seconds: float = Field(..., title="Seconds")
    started_at: AwareDatetime = Field(..., title="Started At")
    status_code: int | None = Field(
        ...,
        description="The receiver's answer; none if there was none.",
        title="Status Code",
    )


class State(StrEnum):
    waiting = "waiting"
    pending = "pending"
    delivered = "delivered"
    failed = "failed"


class WebhookDeliveryRead(BaseModel):
    attempts: list[WebhookAttemptRead] = Field(..., title="Attempts")
    delivered_at: AwareDatetime | None = Field(..., title="Delivered At")
    id: str = Field(
        ...,
        description="Sent as X-Dendrite-Delivery: the same on every attempt.",
        title="Id",
    )
    job_id: str = Field(..., title="Job Id")
    next_attempt_at: AwareDatetime | None = Field(..., title="Next Attempt At")
    state: State = Field(
        ...,
        description="waiting: the job has not ended; pending: due at next_attempt_at; delivered: a 2xx came back; failed: every attempt failed.",
        title="State",
    )
    url: str = Field(..., title="Url")


class WebhookSecretRead(BaseModel):
    created_at: AwareDatetime = Field(..., title="Created At")
    secret: str = Field(
        ...,
        description="Your key for verifying webhook signatures: X-Dendrite-Signature is 'sha256=' + hex HMAC-SHA256 of '<X-Dendrite-Timestamp>.<body>' under it.",
        title="Secret",
    )


class WeightRead(BaseModel):
    name: str = Field(..., description="e.g. kernel, bias, gamma, mean.", title="Name")
    stats: ArrayStats
    trainable: bool = Field(..., title="Trainable")


class BatchPredictionRead(BaseModel):
    array: str | None = Field(..., title="Array")
    attempts: int = Field(..., title="Attempts")
    created_at: AwareDatetime = Field(..., title="Created At")
    dataset_id: str = Field(..., title="Dataset Id")
    duration_seconds: float | None = Field(..., title="Duration Seconds")
    error: str | None = Field(..., title="Error")
    errors_bytes: int = Field(..., title="Errors Bytes")
    finished_at: AwareDatetime | None = Field(..., title="Finished At")
    id: str = Field(..., title="Id")
    links: BatchLinks
    metrics: dict[str, float] | None = Field(
        ...,
        description="Metrics of the predictions against the dataset's target column(s), when it has them (over the rows that have a target value).",
        title="Metrics",
    )
    model: str = Field(
        ...,
        description="The model as asked for (an id, name@alias, ...).",
        title="Model",
    )
    model_id: str = Field(
        ...,
        description="The model it resolved to when the job was submitted.",
        title="Model Id",
    )
    output_format: OutputFormat = Field(..., title="Output Format")
    passthrough_columns: list[str] = Field(..., title="Passthrough Columns")
    progress: BatchProgress
    result_bytes: int = Field(..., title="Result Bytes")
    started_at: AwareDatetime | None = Field(..., title="Started At")
    status: Status = Field(..., title="Status")
    task: str = Field(..., title="Task")
    worker: str | None = Field(..., title="Worker")


class DatasetConflict(BaseModel):
    dependents: (
        dict[Literal["jobs", "models", "sweeps", "model_versions"], Dependents] | None
    ) = Field(
        None,
        description="What depends on the dataset and would be deleted with it (cascade=true).",
        title="Dependents",
    )
    detail: str = Field(
        ..., description="What is wrong and how to fix it.", title="Detail"
    )
    error: str = Field(
        ...,
        description="Machine-readable kind, e.g. invalid_input or not_found.",
        title="Error",
    )
    field: str | None = Field(
        None, description="JSON pointer or column name at fault.", title="Field"
    )


class EpochDiagnosticRead(BaseModel):
    epoch: int = Field(..., title="Epoch")
    first_to_output_ratio: float | None = Field(
        ...,
        description="The first layer's kernel gradient norm / the output layer's.",
        title="First To Output Ratio",
    )
    flags: list[DiagnosticFlag] = Field(..., title="Flags")
    layers: list[LayerDiagnostic] = Field(..., title="Layers")


class ForwardResponse(BaseModel):
    layers: list[LayerOutput] = Field(
        ..., description="Inputs first, then every layer in order.", title="Layers"
    )
    model_id: str = Field(..., title="Model Id")


class JobCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    callback_url: CallbackUrl1 | None = Field(
        None,
        description="When the job ends (succeeded, failed or cancelled), dendrite POSTs its final state (the job as GET /v1/jobs/{id} shows it) here, signed with your webhook secret (GET /v1/webhooks/secret). http or https, without user:password@. Only public addresses are reached (the server's DENDRITE_WEBHOOK_ALLOWED_HOSTS may permit others).",
        examples=["https://example.com/hooks/dendrite"],
        title="Callback Url",
    )
    dataset_id: str = Field(
        ...,
        description="The dataset's id, or the name of your newest dataset with that name.",
        title="Dataset Id",
    )
    device: Device | None = Field(Device.auto, title="Device")
    features: list[str] | None = Field(
        None, description="Default: every other column.", title="Features"
    )
    network: Network
    preprocessing: Preprocessing | None = None
    register_as: Register | None = Field(
        None,
        description="When the job succeeds, register its model as the next version of this registered model (created if you have none by that name), and point `alias` at it if given. Single jobs only (not repeated jobs or sweeps).",
    )
    repeats: int | None = Field(
        1,
        description="Train this many fresh models, each on a new random train/test split (needs a test split), and report each one's test metrics and their mean and std. At most DENDRITE_MAX_REPEATS (default 100).",
        ge=1,
        title="Repeats",
    )
    target: str | list[str] = Field(
        ...,
        description="Target column (a list for multi-output regression); for NPZ: 'y'.",
        title="Target",
    )
    task: Task = Field(..., title="Task")
    training: Training | None = None


class JobRead(BaseModel):
    attempts: int = Field(
        ...,
        description="Times a worker started the job and did not hand it back cleanly.",
        title="Attempts",
    )
    created_at: AwareDatetime = Field(..., title="Created At")
    dataset_id: str = Field(..., title="Dataset Id")
    device: str = Field(..., title="Device")
    device_used: str | None = Field(..., title="Device Used")
    duration_seconds: float | None = Field(..., title="Duration Seconds")
    error: str | None = Field(..., title="Error")
    finished_at: AwareDatetime | None = Field(..., title="Finished At")
    id: str = Field(..., title="Id")
    latest_metrics: dict[str, float] | None = Field(..., title="Latest Metrics")
    links: JobLinks | None = Field(
        None, description="Where to read more about this job: history, plots, page."
    )
    model_id: str | None = Field(..., title="Model Id")
    parent_id: str | None = Field(
        None,
        description="For a part of a repeated job: that job (it trains some repeats).",
        title="Parent Id",
    )
    progress: Progress
    repeats: RepeatsSummary | None = Field(
        None, description="For a repeated job: repeats done and their aggregate."
    )
    request: dict[str, Any] = Field(
        ..., description="The request with every default filled in.", title="Request"
    )
    started_at: AwareDatetime | None = Field(..., title="Started At")
    status: Status = Field(..., title="Status")
    sweep_id: str | None = Field(
        None, description="For a sweep's trial: the sweep.", title="Sweep Id"
    )
    task: str = Field(..., title="Task")
    timings: dict[str, float] | None = Field(
        None,
        description="Seconds per phase of training, once it ended: import (the worker process's TensorFlow import, before the job came; 0 when the process had trained a job before), load, build, trace (compiling the training step; about 0 when the process kept a traced network of the same shape from an earlier job), fit, first_epoch and epoch_writes (both part of fit), evaluate, save.",
        title="Timings",
    )
    worker: str | None = Field(
        ...,
        description="The Celery worker that runs (or last ran) the job; none while it is queued.",
        title="Worker",
    )


class LayerWeights(BaseModel):
    activation: str | None = Field(..., title="Activation")
    name: str = Field(..., title="Name")
    parameters: int = Field(..., title="Parameters")
    type: str = Field(..., title="Type")
    weights: list[WeightRead] = Field(..., title="Weights")


class PageBatchPredictionRead(BaseModel):
    items: list[BatchPredictionRead] = Field(..., title="Items")
    limit: int = Field(..., title="Limit")
    offset: int = Field(..., title="Offset")
    total: int = Field(..., title="Total")


class PageJobRead(BaseModel):
    items: list[JobRead] = Field(..., title="Items")
    limit: int = Field(..., title="Limit")
    offset: int = Field(..., title="Offset")
    total: int = Field(..., title="Total")


class PageRegisteredModelRead(BaseModel):
    items: list[RegisteredModelRead] = Field(..., title="Items")
    limit: int = Field(..., title="Limit")
    offset: int = Field(..., title="Offset")
    total: int = Field(..., title="Total")


class RepeatsRead(BaseModel):
    items: list[RepeatRead] = Field(..., title="Items")
    job_id: str = Field(..., title="Job Id")
    summary: RepeatsSummary


class SpecSummary(BaseModel):
    epochs: int = Field(..., title="Epochs")
    inputs: list[str] = Field(..., title="Inputs")
    labels: list[Any] | None = Field(None, title="Labels")
    layers: list[LayerSummary] = Field(..., title="Layers")
    loss: str = Field(..., title="Loss")
    metrics: list[str] = Field(..., title="Metrics")
    output_units: int = Field(..., title="Output Units")
    parameters: int = Field(..., title="Parameters")
    trainable_parameters: int = Field(..., title="Trainable Parameters")
    training_memory: TrainingMemory | None = None
    valid: bool | None = Field(True, title="Valid")


class SweepCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    base: JobCreate = Field(
        ...,
        description="The job request every trial starts from (without `register_as`: register the best trial's model yourself).",
    )
    direction: Direction | None = Field(
        None,
        description="Default: max for accuracy-like metrics, else min.",
        title="Direction",
    )
    max_trials: MaxTrials | None = Field(
        None,
        description="Random: trials to draw (default 10). Grid: a ceiling on the combinations. At most DENDRITE_MAX_SWEEP_TRIALS (default 20); each trial is a job and counts towards your queued + running jobs.",
        title="Max Trials",
    )
    metric: str | None = Field(
        None,
        description="What ranks the trials: a logged name (`loss`, `val_loss`, `val_mae`, ...; the last epoch's value) or `test_<name>` (the model's test metrics). Default: val_loss with a validation split, else test_loss with a test split, else loss.",
        title="Metric",
    )
    parameters: dict[str, list[Any] | Range] = Field(
        ...,
        description="Field path -> values (grid and random) or a Range (random only). Paths are dotted names into the job request, with [*] for every item of a list or [n] for one: `training.optimizer.learning_rate`, `training.batch_size`, `training.epochs`, `network.layers[*].units`, `network.layers[0].activation`, or `network.layers` whose values are whole layer lists (to vary the layer count). Applied in the order given.",
        max_length=16,
        min_length=1,
        title="Parameters",
    )
    search: Search | None = Field(
        Search.grid,
        description="grid: every combination of the listed values; random: `max_trials` draws.",
        title="Search",
    )
    seed: Seed | None = Field(
        None, description="Seeds the random search's draws.", title="Seed"
    )


class SweepRead(BaseModel):
    best: TrialRead | None = Field(
        ..., description="The best trial so far; its model_id predicts."
    )
    created_at: AwareDatetime = Field(..., title="Created At")
    direction: str = Field(..., title="Direction")
    id: str = Field(..., title="Id")
    metric: str = Field(..., title="Metric")
    request: dict[str, Any] = Field(..., title="Request")
    search: str = Field(..., title="Search")
    status: Status = Field(..., title="Status")
    trials: list[TrialRead] = Field(
        ..., description="Ranked: best first, then unranked by number.", title="Trials"
    )


class WeightsResponse(BaseModel):
    layers: list[LayerWeights] = Field(..., title="Layers")
    max_values: int = Field(
        ...,
        description="Values are listed for weights with at most this many.",
        title="Max Values",
    )
    model_id: str = Field(..., title="Model Id")


class DiagnosticsRead(BaseModel):
    enabled: bool = Field(
        ...,
        description="false when the job asked for training.diagnostics false.",
        title="Enabled",
    )
    epochs: list[EpochDiagnosticRead] = Field(..., title="Epochs")
    job_id: str = Field(..., title="Job Id")
    rules: dict[str, str] = Field(
        ..., description="How each number and flag is defined.", title="Rules"
    )


class PageSweepRead(BaseModel):
    items: list[SweepRead] = Field(..., title="Items")
    limit: int = Field(..., title="Limit")
    offset: int = Field(..., title="Offset")
    total: int = Field(..., title="Total")
