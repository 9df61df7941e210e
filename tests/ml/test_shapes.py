"""Shapes and parameter counts worked out without TensorFlow, held against the models Keras builds;
and the limits and shape errors that `plan.resolve` raises from them before a job is queued."""

from typing import Any

import keras
import numpy as np
import pytest

from service.core import orm
from service.core.config import Settings, get_settings
from service.core.errors import InvalidInput
from service.ml import builder, shapes
from service.ml import plan as plans
from service.ml.plan import Normalization
from service.schemas import network
from service.schemas.jobs import JobCreate


def _dataset(columns: list[dict[str, Any]], file_format: str) -> orm.Dataset:
    return orm.Dataset(
        id="d1", name="data", format=file_format, size_bytes=1, sha256="0" * 64, rows=1,
        columns=columns, storage_key="datasets/d1",
    )  # fmt: skip


def _table() -> orm.Dataset:
    """Three numeric and two string features (3 and 2 categories), a 4-class string target."""
    numeric = [{"name": n, "dtype": "float", "missing": 0} for n in ("a", "b", "c")]
    strings = [
        {"name": "island", "dtype": "string", "missing": 0, "distinct": 3,
         "values": [["Biscoe", 5], ["Dream", 4], ["Torgersen", 3]]},
        {"name": "sex", "dtype": "string", "missing": 0, "distinct": 2,
         "values": [["female", 6], ["male", 6]]},
        {"name": "species", "dtype": "string", "missing": 0, "distinct": 4,
         "values": [[label, 3] for label in ("w", "x", "y", "z")]},
    ]  # fmt: skip
    return _dataset(numeric + strings, "csv")


def _images(shape: list[int], dtype: str = "uint8") -> orm.Dataset:
    labels = {"distinct": 10, "values": [[digit, 10] for digit in range(10)]}
    return _dataset(
        [
            {"name": "x", "dtype": dtype, "missing": 0, "shape": [100, *shape]},
            {"name": "y", "dtype": "uint8", "missing": 0, "shape": [100], **labels},
        ],
        "npz",
    )


def _request(task: str, target: str, layers: list[dict[str, Any]], **fields: Any) -> JobCreate:
    body = {"dataset_id": "d1", "task": task, "target": target, "network": {"layers": layers}}
    return JobCreate.model_validate(body | fields)


CONV = {"type": "conv2d", "filters": 4}
FLAT = {"type": "flatten"}
MNIST_NET = [FLAT, {"type": "dense", "units": 784}, {"type": "dense", "units": 100}]
POOL_4 = {"type": "max_pooling2d", "pool_size": 4}
TABLE_CASES: dict[str, list[dict[str, Any]]] = {
    "course regression net": [{"type": "dense", "units": 50}, {"type": "dense", "units": 50}],
    "dense without bias": [{"type": "dense", "units": 7, "use_bias": False}],
    "every shape-keeping layer": [
        {"type": "dense", "units": 16},
        {"type": "batch_normalization"},
        {"type": "dropout", "rate": 0.2},
        {"type": "activation", "activation": "tanh"},
        {"type": "flatten"},
        {"type": "dense", "units": 3},
    ],
}
IMAGE_CASES: dict[str, tuple[list[int], list[dict[str, Any]]]] = {
    "mnist course net": ([28, 28], MNIST_NET),
    "small convnet": ([28, 28], [CONV, POOL_4, FLAT]),
    "colour images, strides and padding": ([32, 30, 3], [
        {"type": "conv2d", "filters": 6, "kernel_size": [3, 5], "strides": [2, 1],
         "padding": "same"},
        {"type": "batch_normalization"},
        {"type": "average_pooling2d", "pool_size": [2, 3], "strides": [1, 2]},
        {"type": "conv2d", "filters": 5, "kernel_size": 2, "strides": 3, "activation": "elu"},
        {"type": "max_pooling2d", "pool_size": 3, "strides": [2, 1], "padding": "same"},
        {"type": "global_average_pooling2d"},
        {"type": "dense", "units": 8},
    ]),
    "dense over image rows, then a convolution": ([12, 10], [
        {"type": "dense", "units": 6}, CONV, {"type": "global_average_pooling2d"},
    ]),
    "window as large as the image": ([5, 5], [
        {"type": "conv2d", "filters": 2, "kernel_size": 5}, FLAT,
    ]),
    "stride longer than the image": ([3, 4], [
        {"type": "max_pooling2d", "pool_size": 2, "strides": 9}, FLAT,
    ]),
}  # fmt: skip


def _assert_matches_keras(request: JobCreate, dataset: orm.Dataset, normalization: Any) -> None:
    plan = plans.resolve(request, dataset)
    columns = {column["name"]: column for column in dataset.columns}
    for feature in plan.features:  # as the worker sets them: every category the data has
        if feature.kind == "string":
            feature.categories = [str(value) for value, _ in columns[feature.name]["values"]]
    inferred = shapes.infer(
        request.network.layers, plans.input_shape(plan, columns), plan.output_units
    )

    model = builder.build(request.network, plan, normalization)

    keras_rows = {row["name"]: row for row in builder.summarize(model)}
    for row in inferred:
        assert list(row.output_shape) == keras_rows[row.name]["output_shape"][1:], row.name
        assert row.parameters == keras_rows[row.name]["parameters"], row.name
    assert sum(row.parameters for row in inferred) == model.count_params()
    assert list(model.output.shape[1:]) == [plan.output_units]


@pytest.mark.parametrize("layers", TABLE_CASES.values(), ids=TABLE_CASES.keys())
def test_infer_matches_keras_on_tables_with_one_hot_features(layers: list[dict[str, Any]]) -> None:
    request = _request("classification", "species", layers, preprocessing={"normalize": True})
    normalization = Normalization(mean=np.zeros(3), variance=np.ones(3))

    _assert_matches_keras(request, _table(), normalization)


@pytest.mark.parametrize(("sample", "layers"), IMAGE_CASES.values(), ids=IMAGE_CASES.keys())
def test_infer_matches_keras_on_images(sample: list[int], layers: list[dict[str, Any]]) -> None:
    _assert_matches_keras(_request("classification", "y", layers), _images(sample), None)


def test_infer_matches_keras_on_normalized_float_arrays() -> None:
    request = _request("regression", "y", [{"type": "dense", "units": 5}, FLAT])
    normalization = Normalization(mean=np.array(0.5), variance=np.array(2.0))

    _assert_matches_keras(request, _images([4, 6], dtype="float32"), normalization)


def test_input_shape_counts_every_distinct_value_plus_one_before_training() -> None:
    request = _request("classification", "species", [{"type": "dense", "units": 4}])
    dataset = _table()

    plan = plans.resolve(request, dataset)

    columns = {column["name"]: column for column in dataset.columns}
    assert plans.input_shape(plan, columns) == (3 + (3 + 1) + (2 + 1),)


SHAPE_ERRORS = {
    "pooling window larger than the image": (
        [POOL_4, POOL_4, FLAT],
        [8, 8], "/network/layers/1", ["4x4", "2x2"],
    ),
    "kernel larger than the image": (
        [{"type": "conv2d", "filters": 2, "kernel_size": [3, 9]}, FLAT],
        [8, 8], "/network/layers/0", ["3x9", "8x8"],
    ),
    "network ends with images": ([CONV], [8, 8], "/network/layers/0", ["flatten", "[6, 6, 4]"]),
    "dense over rows without flatten": (
        [{"type": "dense", "units": 3}], [8, 8], "/network/layers/0", ["flatten", "[8, 3]"],
    ),
    "pooling after flatten": (
        [FLAT, {"type": "max_pooling2d"}], [8, 8], "/network/layers/1/type", ["image"],
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("layers", "sample", "field", "words"), SHAPE_ERRORS.values(), ids=SHAPE_ERRORS.keys()
)
def test_resolve_rejects_a_network_keras_cannot_build_naming_the_layer(
    layers: list[dict[str, Any]], sample: list[int], field: str, words: list[str]
) -> None:
    with pytest.raises(InvalidInput) as caught:
        plans.resolve(_request("classification", "y", layers), _images(sample))

    assert caught.value.field == field
    for word in words:
        assert word in caught.value.detail


def test_resolve_rejects_npz_with_one_number_per_sample() -> None:
    with pytest.raises(InvalidInput, match=r"shape \[100, 1\]") as caught:
        plans.resolve(_request("regression", "y", [{"type": "dense", "units": 3}]), _images([]))

    assert caught.value.field == "/dataset_id"


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("DENDRITE_MAX_PARAMETERS", "690000")
    monkeypatch.setenv("DENDRITE_MAX_LAYERS", "3")
    monkeypatch.setenv("DENDRITE_MAX_EPOCHS", "50")
    get_settings.cache_clear()
    return get_settings()


def test_resolve_rejects_too_many_parameters_naming_the_largest_layer(limits: Settings) -> None:
    request = _request("classification", "y", MNIST_NET)

    with pytest.raises(InvalidInput) as caught:
        plans.resolve(request, _images([28, 28]))

    assert caught.value.field == "/network/layers/1"
    for words in ("694,950", "690,000", "DENDRITE_MAX_PARAMETERS", "615,440"):
        assert words in caught.value.detail


def test_resolve_accepts_a_network_at_the_parameter_limit(limits: Settings) -> None:
    request = _request("classification", "y", MNIST_NET)
    limits.max_parameters = 615440 + 78500 + 1010

    assert plans.resolve(request, _images([28, 28])).output_units == 10


def test_resolve_rejects_too_many_layers(limits: Settings) -> None:
    request = _request("classification", "y", [FLAT] + [{"type": "dense", "units": 2}] * 3)

    with pytest.raises(InvalidInput, match=r"4 layers.*at most 3.*DENDRITE_MAX_LAYERS") as caught:
        plans.resolve(request, _images([4, 4]))

    assert caught.value.field == "/network/layers"


def test_resolve_rejects_too_many_epochs(limits: Settings) -> None:
    request = _request("classification", "y", [FLAT], training={"epochs": 51})

    with pytest.raises(InvalidInput, match=r"51 epochs.*at most 50.*DENDRITE_MAX_EPOCHS") as caught:
        plans.resolve(request, _images([4, 4]))

    assert caught.value.field == "/training/epochs"


# --- training memory -------------------------------------------------------------------------

MNIST_CNN: list[dict[str, Any]] = [
    {"type": "conv2d", "filters": 32}, {"type": "max_pooling2d"},
    {"type": "conv2d", "filters": 64}, {"type": "max_pooling2d"},
    FLAT, {"type": "dropout", "rate": 0.5}, {"type": "dense", "units": 128},
]  # fmt: skip
HUGE_CONV: list[dict[str, Any]] = [
    {"type": "conv2d", "filters": 4096},
    {"type": "global_average_pooling2d"},
]


def _mnist(rows: int = 60_000) -> orm.Dataset:
    dataset = _images([28, 28])
    dataset.rows = rows
    return dataset


@pytest.mark.parametrize(
    ("name", "momentum"),
    [(name, None) for name in network.OPTIMIZERS] + [("sgd", 0.9), ("rmsprop", 0.9)],
)
def test_optimizer_slots_match_the_state_keras_keeps(name: str, momentum: float | None) -> None:
    options: dict[str, Any] = {"learning_rate": 0.01}
    if momentum is not None:
        options["momentum"] = momentum
    optimizer = keras.optimizers.get({"class_name": name, "config": options})
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(5)])  # 20 weights
    optimizer.build(model.trainable_variables)

    values = sum(int(variable.numpy().size) for variable in optimizer.variables)

    assert values // 20 == shapes.optimizer_slots(name, momentum)  # besides a few scalars


def test_training_memory_counts_weights_activations_and_the_input_batch() -> None:
    request = _request("classification", "y", MNIST_NET, training={"batch_size": 64})

    memory = plans.resolve(request, _mnist()).memory

    assert memory is not None and memory.batch_size == 64
    assert memory.weights_bytes == 694_950 * (1 + 1 + 2) * 4  # weights, gradients, adam's two
    assert memory.activations_bytes == 64 * (784 + 784 + 100 + 10) * 4 * 2
    assert memory.input_bytes == 64 * 784 * 4


def test_training_memory_batch_is_at_most_the_dataset_rows() -> None:
    request = _request("classification", "y", MNIST_NET, training={"batch_size": 65536})

    memory = plans.resolve(request, _mnist(rows=3000)).memory

    assert memory is not None and memory.batch_size == 3000


@pytest.mark.parametrize("batch_size", [32, 128, 1024])
def test_course_and_mnist_networks_fit_the_default_limit_with_room(batch_size: int) -> None:
    limit = get_settings().max_training_memory_mb * 2**20
    for layers in (MNIST_NET, MNIST_CNN):
        request = _request("classification", "y", layers, training={"batch_size": batch_size})
        memory = plans.resolve(request, _mnist()).memory
        assert memory is not None and memory.total_bytes < limit / 4, layers


def test_resolve_rejects_a_batch_whose_activations_exceed_the_limit_naming_the_layer() -> None:
    """The issue's case: within max_parameters (41k), but about a terabyte to train."""
    request = _request("classification", "y", HUGE_CONV, training={"batch_size": 65536})

    with pytest.raises(InvalidInput) as caught:
        plans.resolve(request, _mnist())

    assert caught.value.field == "/network/layers/0"
    for words in ("4,096 MB", "DENDRITE_MAX_TRAINING_MEMORY_MB", "layer 0 (conv2d)", "60,000 rows"):
        assert words in caught.value.detail


def test_resolve_names_the_batch_when_the_input_takes_most(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DENDRITE_MAX_TRAINING_MEMORY_MB", "1")
    get_settings.cache_clear()
    request = _request("classification", "y", [{"type": "max_pooling2d", "pool_size": 7}, FLAT],
                       training={"batch_size": 4096})  # fmt: skip

    with pytest.raises(InvalidInput, match="the input batch") as caught:
        plans.resolve(request, _mnist())

    assert caught.value.field == "/training/batch_size"


def test_resolve_accepts_a_network_within_a_lowered_memory_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    request = _request("classification", "y", MNIST_CNN, training={"batch_size": 128})
    needed = plans.resolve(request, _mnist()).memory
    assert needed is not None
    monkeypatch.setenv("DENDRITE_MAX_TRAINING_MEMORY_MB", str(-(-needed.total_bytes // 2**20)))
    get_settings.cache_clear()

    assert plans.resolve(request, _mnist()).memory == needed
    monkeypatch.setenv("DENDRITE_MAX_TRAINING_MEMORY_MB", str(needed.total_bytes // 2**20 - 1))
    get_settings.cache_clear()
    with pytest.raises(InvalidInput, match="DENDRITE_MAX_TRAINING_MEMORY_MB"):
        plans.resolve(request, _mnist())
