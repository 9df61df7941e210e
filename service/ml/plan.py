"""A job request checked against its dataset's schema, without TensorFlow.

`resolve` turns a `JobCreate` plus a `Dataset` into a `Plan`: the features and their kinds, the
targets, the output layer, the loss and metrics. Every mismatch is an `InvalidInput` that names
the field (JSON pointer) or column, so the API rejects a bad job before it is queued; so is a
network over the limits (layers, epochs, parameters: `service.ml.shapes` counts them).
"""

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from service.core import orm
from service.core.config import get_settings
from service.core.errors import InvalidInput
from service.ml import shapes
from service.schemas import network
from service.schemas.jobs import JobCreate

MAX_CLASSES = 1000
ARRAY_FEATURE = "x"
IMAGE_LAYERS = ("conv2d", "max_pooling2d", "average_pooling2d", "global_average_pooling2d")


@dataclass
class Feature:
    name: str  # the column, as in the dataset
    input: str  # the Keras input name
    kind: Literal["numeric", "string"]
    categories: list[Any] | None = None


@dataclass
class Normalization:
    """Mean and variance of the numeric inputs, in feature order (one pair for array data)."""

    mean: Any  # numpy arrays; typed loosely so this module needs no numpy import
    variance: Any


@dataclass
class Plan:
    task: Literal["regression", "classification"]
    data: Literal["tabular", "array"]
    features: list[Feature]
    targets: list[str]
    output_units: int
    output_activation: str
    loss: str
    metrics: list[str]
    epochs: int
    labels: list[Any] | None = None
    sample_shape: list[int] = field(default_factory=list)
    scale_pixels: bool = False
    memory: shapes.Memory | None = None  # what one training step holds (`_check_size`)


def input_name(column: str, taken: set[str]) -> str:
    """A Keras-safe input name for a column: lower case, [a-z0-9_], unique."""
    base = re.sub(r"[^0-9a-z_]+", "_", column.lower()).strip("_") or "feature"
    if base[0].isdigit():
        base = f"f_{base}"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def resolve(request: JobCreate, dataset: orm.Dataset) -> Plan:
    task = request.task
    training = request.training
    loss = training.loss or (
        "mean_squared_error" if task == "regression" else "categorical_crossentropy"
    )
    allowed_losses = (
        network.REGRESSION_LOSSES if task == "regression" else network.CLASSIFICATION_LOSSES
    )
    if loss not in allowed_losses:
        raise InvalidInput(
            f"loss '{loss}' does not fit a {task} task; choose one of: {', '.join(allowed_losses)}",
            field="/training/loss",
        )
    metrics = (
        training.metrics
        if training.metrics is not None
        else (["mae"] if task == "regression" else ["accuracy"])
    )
    allowed_metrics = (
        network.REGRESSION_METRICS if task == "regression" else network.CLASSIFICATION_METRICS
    )
    for index, metric in enumerate(metrics):
        if metric not in allowed_metrics:
            raise InvalidInput(
                f"metric '{metric}' does not fit a {task} task; choose from: "
                f"{', '.join(allowed_metrics)}",
                field=f"/training/metrics/{index}",
            )
    stopping = training.early_stopping
    if stopping and stopping.monitor.startswith("val_") and training.validation_split == 0:
        raise InvalidInput(
            f"early_stopping monitors '{stopping.monitor}', which needs validation_split > 0",
            field="/training/early_stopping/monitor",
        )
    epochs = training.epochs or (100 if task == "regression" else 10)
    _check_limits(request, epochs)
    default_activation = "linear" if task == "regression" else "softmax"
    plan = Plan(
        task=task,
        data="array" if dataset.format == "npz" else "tabular",
        features=[],
        targets=[],
        output_units=1,
        output_activation=request.network.output_activation or default_activation,
        loss=loss,
        metrics=list(metrics),
        epochs=epochs,
    )
    columns = {column["name"]: column for column in dataset.columns}
    if plan.data == "array":
        _resolve_arrays(request, plan, columns)
    else:
        _resolve_tabular(request, plan, columns)
    _check_layers_fit(request, plan)
    _check_size(request, plan, columns, dataset.rows)
    if plan.output_units == 1 and plan.output_activation in ("softmax", "log_softmax", "sparsemax"):
        raise InvalidInput(
            f"output_activation '{plan.output_activation}' over the single output unit gives the "
            "same value for every row; use 'linear' (the default) for regression",
            field="/network/output_activation",
        )
    return plan


def _targets(request: JobCreate) -> list[str]:
    targets = [request.target] if isinstance(request.target, str) else list(request.target)
    if not targets:
        raise InvalidInput("target names no column", field="/target")
    if len(targets) > 1 and request.task == "classification":
        raise InvalidInput(
            "classification takes one target column; a list is for multi-output regression",
            field="/target",
        )
    return targets


def _resolve_tabular(request: JobCreate, plan: Plan, columns: dict[str, Any]) -> None:
    plan.targets = _targets(request)
    for index, target in enumerate(plan.targets):
        if target not in columns:
            pointer = "/target" if isinstance(request.target, str) else f"/target/{index}"
            raise InvalidInput(
                f"target column '{target}' is not in the dataset; its columns are: "
                f"{', '.join(columns)}",
                field=pointer,
            )
        if plan.task == "regression" and columns[target]["dtype"] == "string":
            raise InvalidInput(
                f"target column '{target}' holds text, which regression cannot predict; "
                "use task 'classification' or a numeric target",
                field="/target",
            )
    if request.features is None:
        names = [name for name in columns if name not in plan.targets]
    else:
        names = list(request.features)
        for index, name in enumerate(names):
            if name not in columns:
                raise InvalidInput(
                    f"feature column '{name}' is not in the dataset; its columns are: "
                    f"{', '.join(columns)}",
                    field=f"/features/{index}",
                )
            if name in plan.targets:
                raise InvalidInput(
                    f"column '{name}' is the target; it cannot also be a feature",
                    field=f"/features/{index}",
                )
        if len(set(names)) != len(names):
            raise InvalidInput("features lists a column twice", field="/features")
    if not names:
        raise InvalidInput("no feature columns are left besides the target", field="/features")
    taken: set[str] = set()
    for name in names:
        kind: Literal["numeric", "string"] = (
            "string" if columns[name]["dtype"] == "string" else "numeric"
        )
        plan.features.append(Feature(name=name, input=input_name(name, taken), kind=kind))
    if request.preprocessing.missing == "error":
        missing = [
            f"{name} ({columns[name]['missing']})"
            for name in [*plan.targets, *names]
            if columns[name].get("missing")
        ]
        if missing:
            raise InvalidInput(
                "these columns have missing values (count in brackets): "
                f"{', '.join(missing)}; set preprocessing.missing to 'drop' to drop those rows "
                "or 'mean' to fill them",
                field="/preprocessing/missing",
            )
    if plan.task == "classification":
        _resolve_classes(plan, columns[plan.targets[0]])
    else:
        plan.output_units = len(plan.targets)


def _resolve_classes(plan: Plan, column: dict[str, Any]) -> None:
    distinct = column.get("distinct")
    if distinct is not None and distinct < 2:
        raise InvalidInput(
            f"target '{column['name']}' has {distinct} class; classification needs at least 2",
            field="/target",
        )
    if distinct is not None and distinct > MAX_CLASSES:
        raise InvalidInput(
            f"target '{column['name']}' has {distinct} distinct values, more than the "
            f"{MAX_CLASSES} classes allowed; is this a regression target?",
            field="/task",
        )
    values = column.get("values")
    # The upload lists the most frequent values only; a partial list is no list of labels.
    if values and (distinct is None or len(values) == distinct):
        plan.labels = sorted(value for value, _count in values)
    plan.output_units = distinct or len(plan.labels or [])


def _resolve_arrays(request: JobCreate, plan: Plan, columns: dict[str, Any]) -> None:
    x_key = "x_train" if "x_train" in columns else "x"
    y_key = "y_train" if "y_train" in columns else "y"
    targets = _targets(request)
    if targets[0] not in ("y", y_key) or len(targets) != 1:
        raise InvalidInput(
            f"this NPZ dataset's target is its '{y_key}' array; set target to 'y'", field="/target"
        )
    if request.features not in (None, ["x"], [x_key]):
        raise InvalidInput(
            f"this NPZ dataset has one feature array, '{x_key}'; leave features unset",
            field="/features",
        )
    x_column, y_column = columns[x_key], columns[y_key]
    plan.targets = ["y"]
    plan.sample_shape = list(x_column["shape"][1:])
    if not plan.sample_shape:
        raise InvalidInput(
            f"this NPZ dataset's '{x_key}' holds one number per sample (shape "
            f"{x_column['shape']}); a network needs each sample as a vector or an image: save "
            f"'{x_key}' with shape [{x_column['shape'][0]}, 1]",
            field="/dataset_id",
        )
    plan.scale_pixels = x_column["dtype"] == "uint8"
    plan.features = [Feature(name=ARRAY_FEATURE, input=ARRAY_FEATURE, kind="numeric")]
    if plan.task == "classification":
        if len(y_column["shape"]) != 1:
            raise InvalidInput(
                f"classification needs '{y_key}' to hold one label per row (shape [n]); it has "
                f"shape {y_column['shape']}",
                field="/target",
            )
        _resolve_classes(plan, y_column)
    else:
        shape = y_column["shape"]
        plan.output_units = 1 if len(shape) == 1 else int(shape[1])


def _check_layers_fit(request: JobCreate, plan: Plan) -> None:
    rank = len(plan.sample_shape) if plan.data == "array" else 1
    for index, layer in enumerate(request.network.layers):
        if layer.type in IMAGE_LAYERS and rank not in (2, 3):
            raise InvalidInput(
                f"layer {index} ({layer.type}) needs image rows (height x width [x channels]); "
                f"this dataset's rows have shape {plan.sample_shape}",
                field=f"/network/layers/{index}/type",
            )
        if layer.type in ("flatten", "global_average_pooling2d"):
            rank = 1


def _check_limits(request: JobCreate, epochs: int) -> None:
    settings = get_settings()
    count = len(request.network.layers)
    if count > settings.max_layers:
        raise InvalidInput(
            f"the network has {count} layers; at most {settings.max_layers} are allowed "
            "(setting DENDRITE_MAX_LAYERS)",
            field="/network/layers",
        )
    if epochs > settings.max_epochs:
        raise InvalidInput(
            f"{epochs} epochs asked for; at most {settings.max_epochs} are allowed "
            "(setting DENDRITE_MAX_EPOCHS)",
            field="/training/epochs",
        )


def input_shape(plan: Plan, columns: dict[str, Any]) -> shapes.Shape:
    """One row's shape as the first hidden layer sees it: numeric features and one-hot encodings
    (categories + 1 out-of-vocabulary slot) side by side, or an NPZ sample's shape."""
    if plan.data == "array":
        return tuple(plan.sample_shape)
    width = 0
    for feature in plan.features:
        if feature.kind == "numeric":
            width += 1
        elif feature.categories is not None:
            width += len(feature.categories) + 1
        else:  # every distinct value may be in the training rows
            width += int(columns[feature.name].get("distinct") or 0) + 1
    return (width,)


def _check_size(request: JobCreate, plan: Plan, columns: dict[str, Any], rows: int) -> None:
    """The network's parameters and the memory training it takes, against their limits."""
    shape = input_shape(plan, columns)
    layers = shapes.infer(request.network.layers, shape, plan.output_units)
    _check_parameters(layers)
    optimizer = request.training.optimizer
    plan.memory = shapes.training_memory(
        layers,
        shape,
        batch_size=max(1, min(request.training.batch_size, rows)),
        slots=shapes.optimizer_slots(optimizer.name, optimizer.momentum),
    )
    _check_memory(request, plan.memory)


def _check_parameters(layers: list[shapes.LayerShape]) -> None:
    total = sum(layer.parameters for layer in layers)
    limit = get_settings().max_parameters
    if total > limit:
        largest = max(layers, key=lambda layer: layer.parameters)
        where = f"/network/layers/{largest.index}" if largest.index is not None else "the output"
        raise InvalidInput(
            f"the network has {total:,} parameters; at most {limit:,} are allowed (setting "
            f"DENDRITE_MAX_PARAMETERS). The largest layer is {where} with "
            f"{largest.parameters:,}: use fewer units or filters, or pool before a dense layer",
            field="/network" if largest.index is None else f"/network/layers/{largest.index}",
        )


def _mb(size: int) -> str:
    return f"{size / 2**20:,.0f} MB"


def _check_memory(request: JobCreate, memory: shapes.Memory) -> None:
    limit_mb = get_settings().max_training_memory_mb
    if memory.total_bytes <= limit_mb * 2**20:
        return
    layer, size = memory.largest()
    if memory.input_bytes >= size or (layer.index is None and layer.name != "output"):
        field, what, size = "/training/batch_size", "the input batch", memory.input_bytes
    elif layer.index is None:
        field, what = "/network", "the output layer"
    else:
        kind = request.network.layers[layer.index].type
        field, what = f"/network/layers/{layer.index}", f"layer {layer.index} ({kind})"
    raise InvalidInput(
        f"training this network takes about {_mb(memory.total_bytes)} of memory, more than the "
        f"{limit_mb:,} MB allowed (setting DENDRITE_MAX_TRAINING_MEMORY_MB): weights, gradients "
        f"and optimizer state {_mb(memory.weights_bytes)}, activations of a batch of "
        f"{memory.batch_size:,} rows (kept for the backward pass) "
        f"{_mb(memory.activations_bytes)}, the input batch {_mb(memory.input_bytes)}. The most "
        f"is {what}, with {_mb(size)}: use a smaller training.batch_size, fewer filters or "
        "units, or pool (or stride) earlier",
        field=field,
    )
