"""The Keras model built from a plan: every spec name against the installed Keras, the course
networks' shapes, and preprocessing that lives inside the model."""

from typing import Any

import keras
import numpy as np
import pytest

from service.core import orm
from service.ml import builder
from service.ml import plan as plans
from service.ml.plan import Normalization
from service.schemas import network
from service.schemas.jobs import JobCreate
from tests.ml.conftest import Trained, fit

CONCRETE_FEATURES = [
    "Cement", "Blast Furnace Slag", "Fly Ash", "Water", "Superplasticizer", "Coarse Aggregate",
    "Fine Aggregate", "Age",
]  # fmt: skip


def _dataset(columns: list[dict[str, Any]], file_format: str = "csv") -> orm.Dataset:
    return orm.Dataset(
        id="d1", name="data", format=file_format, size_bytes=1, sha256="0" * 64, rows=1,
        columns=columns, storage_key="datasets/d1",
    )  # fmt: skip


def _concrete() -> orm.Dataset:
    return _dataset(
        [{"name": n, "dtype": "float", "missing": 0} for n in [*CONCRETE_FEATURES, "Strength"]]
    )


def _images(shape: list[int], dtype: str = "uint8") -> orm.Dataset:
    labels = {"distinct": 10, "values": [[digit, 10] for digit in range(10)]}
    return _dataset(
        [
            {"name": "x", "dtype": dtype, "missing": 0, "shape": [100, *shape]},
            {"name": "y", "dtype": "uint8", "missing": 0, "shape": [100], **labels},
        ],
        file_format="npz",
    )


def _request(task: str, target: str, layers: list[dict[str, Any]], **fields: Any) -> JobCreate:
    body = {"dataset_id": "d1", "task": task, "target": target, "network": {"layers": layers}}
    return JobCreate.model_validate(body | fields)


def _build(
    request: JobCreate, dataset: orm.Dataset, normalization: Normalization | None = None
) -> tuple[plans.Plan, keras.Model]:
    plan = plans.resolve(request, dataset)
    return plan, builder.build(request.network, plan, normalization)


def _parameters(model: keras.Model, layer_type: str) -> list[int]:
    rows = builder.summarize(model)
    return [row["parameters"] for row in rows if row["type"] == layer_type]


@pytest.mark.parametrize("name", network.ACTIVATIONS)
def test_get_activation_resolves_every_spec_name(name: str) -> None:
    activation = keras.activations.get(name)

    assert callable(activation)
    assert np.asarray(activation(np.array([[0.5, -1.0]], dtype="float32"))).shape == (1, 2)


@pytest.mark.parametrize("name", network.ACTIVATIONS)
def test_build_model_runs_with_every_activation(name: str) -> None:
    layers: list[dict[str, Any]] = [
        {"type": "dense", "units": 4, "activation": name},
        {"type": "activation", "activation": name},
        {"type": "dense", "units": 3},
    ]
    request = _request("regression", "Strength", layers)
    request.target = ["Strength", "Water"]  # two units, so softmax over them means something
    request.network.output_activation = name

    plan, model = _build(request, _concrete())
    predictions = model.predict_on_batch({f.input: np.ones((2, 1)) for f in plan.features})

    assert predictions.shape == (2, 2)


@pytest.mark.parametrize(
    "name", sorted({*network.REGRESSION_LOSSES, *network.CLASSIFICATION_LOSSES})
)
def test_get_loss_resolves_every_spec_name(name: str) -> None:
    loss = keras.losses.get(name)

    value = loss(np.array([[0.0, 1.0]], "float32"), np.array([[0.2, 0.8]], "float32"))
    assert np.isfinite(np.asarray(value)).all()


def _tiny(task: str, metrics: list[str]) -> tuple[plans.Plan, keras.Model]:
    columns = [{"name": n, "dtype": "float", "missing": 0} for n in ("a", "b")]
    if task == "regression":
        columns.append({"name": "t", "dtype": "float", "missing": 0})
    else:
        values = [[label, 4] for label in ("x", "y", "z")]
        columns.append({"name": "t", "dtype": "string", "distinct": 3, "values": values})
    request = _request(task, "t", [{"type": "dense", "units": 4}], training={"metrics": metrics})
    return _build(request, _dataset(columns))


def _tiny_data(rows: int = 12) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {name: rng.uniform(1, 2, (rows, 1)).astype("float32") for name in ("a", "b")}


@pytest.mark.parametrize("name", network.OPTIMIZERS)
def test_compile_model_builds_every_optimizer_and_trains(name: str) -> None:
    plan, model = _tiny("regression", ["mae"])
    before = [w.copy() for w in model.get_weights()]

    builder.compile_model(model, plan, network.Optimizer(name=name, learning_rate=0.05))
    model.fit(_tiny_data(), np.ones((12, 1), "float32"), epochs=1, batch_size=12, verbose=0)

    assert type(model.optimizer).__name__.lower() == name
    assert float(model.optimizer.learning_rate) == pytest.approx(0.05)
    after = model.get_weights()
    assert any(not np.array_equal(b, a) for b, a in zip(before, after, strict=True))


@pytest.mark.parametrize("name", ["sgd", "rmsprop"])
def test_compile_model_passes_momentum(name: str) -> None:
    plan, model = _tiny("regression", ["mae"])

    builder.compile_model(model, plan, network.Optimizer(name=name, momentum=0.8))

    assert model.optimizer.momentum == pytest.approx(0.8)


def test_compile_model_reports_every_regression_metric() -> None:
    plan, model = _tiny("regression", list(network.REGRESSION_METRICS))
    builder.compile_model(model, plan, network.Optimizer())

    history = model.fit(
        _tiny_data(), np.full((12, 1), 3.0, "float32"), epochs=1, batch_size=12, verbose=0
    )

    assert len(history.history) == 1 + len(network.REGRESSION_METRICS)  # the loss and each metric
    assert all(np.isfinite(values[0]) for values in history.history.values())


def test_compile_model_reports_every_classification_metric() -> None:
    plan, model = _tiny("classification", list(network.CLASSIFICATION_METRICS))
    builder.compile_model(model, plan, network.Optimizer())
    y = keras.utils.to_categorical(np.arange(12) % 3, num_classes=3)

    history = model.fit(_tiny_data(), y, epochs=1, batch_size=12, verbose=0)

    assert len(history.history) == 1 + len(network.CLASSIFICATION_METRICS)
    assert all(np.isfinite(values[0]) for values in history.history.values())


def test_compile_model_uses_the_plan_loss() -> None:
    plan, model = _tiny("regression", ["mae"])
    plan.loss = "huber"

    builder.compile_model(model, plan, network.Optimizer())
    loss = model.evaluate(_tiny_data(2), np.zeros((2, 1), "float32"), verbose=0, return_dict=True)

    predictions = model.predict_on_batch(_tiny_data(2))
    expected = keras.losses.Huber()(np.zeros((2, 1), "float32"), predictions)
    assert loss["loss"] == pytest.approx(float(expected), rel=1e-5)


def test_build_course_regression_net_has_course_parameter_counts() -> None:
    layers = [{"type": "dense", "units": 50}, {"type": "dense", "units": 50}]
    normalization = Normalization(mean=np.zeros(8), variance=np.ones(8))

    _plan, model = _build(_request("regression", "Strength", layers), _concrete(), normalization)

    assert _parameters(model, "Dense") == [450, 2550, 51]
    assert model.count_params() == 450 + 2550 + 51
    assert sorted(model.input.keys()) == sorted(  # one raw input per column
        plans.input_name(name, set()) for name in CONCRETE_FEATURES
    )
    assert model.output.shape == (None, 1)


def test_build_mnist_course_net_has_course_parameter_counts() -> None:
    layers: list[dict[str, Any]] = [
        {"type": "flatten"},
        {"type": "dense", "units": 784, "activation": "relu"},
        {"type": "dense", "units": 100, "activation": "relu"},
    ]

    _plan, model = _build(_request("classification", "y", layers), _images([28, 28]))

    assert _parameters(model, "Dense") == [615440, 78500, 1010]
    rows = {row["name"]: row for row in builder.summarize(model)}
    assert rows["scale_pixels"]["type"] == "Rescaling"
    assert rows["flatten_1"]["output_shape"] == [None, 784]
    assert rows["output"]["output_shape"] == [None, 10]
    assert model.get_layer("output").activation is keras.activations.softmax


def test_build_scales_pixels_to_unit_range() -> None:
    _plan, model = _build(_request("classification", "y", [{"type": "flatten"}]), _images([2, 2]))

    scaled = model.get_layer("scale_pixels")(np.array([[[0.0, 51.0], [255.0, 102.0]]]))

    np.testing.assert_allclose(np.asarray(scaled), [[[0.0, 0.2], [1.0, 0.4]]], rtol=1e-6)


def test_build_normalizes_numeric_inputs_with_given_statistics() -> None:
    mean, variance = np.arange(1.0, 9.0), np.arange(1.0, 9.0) ** 2
    layers = [{"type": "dense", "units": 2}]

    _plan, model = _build(
        _request("regression", "Strength", layers), _concrete(), Normalization(mean, variance)
    )
    raw = np.array([[2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0]], "float32")
    normalized = np.asarray(model.get_layer("normalize")(raw))

    np.testing.assert_allclose(normalized, (raw - mean) / np.sqrt(variance), rtol=1e-6)


def test_build_without_normalization_passes_numbers_through() -> None:
    _plan, model = _build(
        _request("regression", "Strength", [{"type": "dense", "units": 2}]), _concrete()
    )

    assert "normalize" not in [layer.name for layer in model.layers]


def test_build_one_hot_encodes_string_features_inside_the_model() -> None:
    columns: list[dict[str, Any]] = [
        {"name": "island", "dtype": "string", "distinct": 3},
        {"name": "mass", "dtype": "float"},
        {"name": "species", "dtype": "string", "distinct": 2, "values": [["a", 1], ["b", 1]]},
    ]
    request = _request("classification", "species", [{"type": "dense", "units": 4}])
    plan = plans.resolve(request, _dataset(columns))
    plan.features[0].categories = ["Biscoe", "Dream", "Torgersen"]

    model = builder.build(request.network, plan, None)

    lookup = model.get_layer("island_one_hot")
    assert type(lookup).__name__ == "StringLookup"
    assert model.input["island"].dtype == "string"
    encoded = np.asarray(lookup(np.array([["Dream"], ["Biscoe"], ["Atlantis"]])))
    # Index 0 is for values not seen in training.
    np.testing.assert_array_equal(encoded, [[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0]])
    rows = {row["name"]: row for row in builder.summarize(model)}
    assert rows["features"]["output_shape"] == [None, 1 + 4]
    predictions = model.predict_on_batch(
        {"island": np.array([["Dream"], ["Atlantis"]], dtype=object),
         "mass": np.array([[3.0], [4.0]], "float32")}
    )  # fmt: skip
    assert predictions.shape == (2, 2)


def test_build_conv2d_on_28x28_arrays_adds_a_channel() -> None:
    layers: list[dict[str, Any]] = [
        {"type": "conv2d", "filters": 4, "kernel_size": 3},
        {"type": "max_pooling2d", "pool_size": 2},
        {"type": "conv2d", "filters": 2, "kernel_size": [3, 3], "padding": "same"},
        {"type": "global_average_pooling2d"},
    ]

    _plan, model = _build(_request("classification", "y", layers), _images([28, 28]))

    rows = {row["name"]: row for row in builder.summarize(model)}
    assert rows["add_channel_1"]["output_shape"] == [None, 28, 28, 1]
    assert rows["conv2d_1"]["output_shape"] == [None, 26, 26, 4]
    assert rows["conv2d_1"]["parameters"] == 3 * 3 * 4 + 4
    assert rows["max_pooling2d_2"]["output_shape"] == [None, 13, 13, 4]
    assert rows["conv2d_3"]["output_shape"] == [None, 13, 13, 2]
    assert "add_channel_3" not in rows
    probabilities = model.predict_on_batch(np.zeros((2, 28, 28), "float32"))
    np.testing.assert_allclose(probabilities.sum(axis=1), [1.0, 1.0], rtol=1e-5)


def test_build_conv2d_on_images_with_channels_adds_no_channel() -> None:
    layers: list[dict[str, Any]] = [{"type": "conv2d", "filters": 4}, {"type": "flatten"}]

    _plan, model = _build(_request("classification", "y", layers), _images([8, 8, 3]))

    rows = {row["name"]: row for row in builder.summarize(model)}
    assert "add_channel_1" not in rows
    assert rows["conv2d_1"]["parameters"] == 3 * 3 * 3 * 4 + 4


def test_build_passes_layer_arguments_to_keras() -> None:
    layers: list[dict[str, Any]] = [
        {"type": "dense", "units": 6, "activation": "tanh", "use_bias": False},
        {"type": "batch_normalization", "momentum": 0.8, "epsilon": 0.01},
        {"type": "activation", "activation": "gelu"},
        {"type": "dropout", "rate": 0.25},
    ]

    _plan, model = _build(_request("regression", "Strength", layers), _concrete())

    assert model.get_layer("dense_1").get_config()["activation"] == "tanh"
    assert model.get_layer("dense_1").get_config()["use_bias"] is False
    assert model.get_layer("batch_normalization_2").momentum == 0.8
    assert model.get_layer("batch_normalization_2").epsilon == 0.01
    assert model.get_layer("activation_3").get_config()["activation"] == "gelu"
    assert model.get_layer("dropout_4").rate == 0.25


def test_build_output_layer_follows_the_plan() -> None:
    network = {"layers": [{"type": "dense", "units": 4}], "output_activation": "softplus"}
    request = JobCreate.model_validate(
        {"dataset_id": "d1", "task": "regression", "target": ["Strength", "Water"],
         "network": network}
    )  # fmt: skip

    _plan, model = _build(request, _concrete())

    assert model.output.shape == (None, 2)
    assert model.get_layer("output").get_config()["activation"] == "softplus"


def test_summarize_lists_layers_after_the_inputs() -> None:
    layers = [{"type": "dense", "units": 50}, {"type": "dropout", "rate": 0.1}]
    normalization = Normalization(mean=np.zeros(8), variance=np.ones(8))

    _plan, model = _build(_request("regression", "Strength", layers), _concrete(), normalization)
    rows = builder.summarize(model)

    assert [(row["name"], row["type"]) for row in rows] == [
        ("numeric", "Concatenate"), ("normalize", "Normalization"), ("dense_1", "Dense"),
        ("dropout_2", "Dropout"), ("output", "Dense"),
    ]  # fmt: skip
    assert rows[2]["output_shape"] == [None, 50]
    assert sum(row["parameters"] for row in rows) == model.count_params()


def test_fit_trains_built_model_on_raw_text_and_numbers(penguin_species: Trained) -> None:
    plan, prepared = penguin_species.plan, penguin_species.prepared
    net = network.Network.model_validate({"layers": [{"type": "dense", "units": 8}]})
    model = builder.build(net, plan, prepared.normalization)
    builder.compile_model(model, plan, network.Optimizer(learning_rate=0.05))
    assert prepared.validation is not None
    x = builder.model_inputs(prepared.validation.x)
    y = keras.utils.to_categorical(prepared.validation.y, num_classes=plan.output_units)
    before = model.evaluate(x, y, verbose=0, return_dict=True)

    fit(model, plan, prepared.train, epochs=3)

    after = model.evaluate(x, y, verbose=0, return_dict=True)
    assert after["loss"] < before["loss"]
