"""The network spec (service/schemas/network.py) and the job request around it
(service/schemas/).

Whether Keras knows every name in the closed lists is checked in tests/ml/test_builder.py; these
tests need no TensorFlow.
"""

from typing import Any

import pytest
from pydantic import ValidationError

from service.schemas import examples, network
from service.schemas.jobs import JobCreate, Training


def _network_error(layer: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(ValidationError) as caught:
        network.Network.model_validate({"layers": [layer]})
    errors = caught.value.errors()
    assert len(errors) == 1
    return dict(errors[0])


def _job(**overrides: Any) -> dict[str, Any]:
    return {
        "dataset_id": "concrete",
        "task": "regression",
        "target": "Strength",
        "network": {"layers": [{"type": "dense", "units": 50}]},
        **overrides,
    }


def test_validate_network_accepts_every_layer_type() -> None:
    layers: list[dict[str, Any]] = [
        {"type": "conv2d", "filters": 8, "kernel_size": [3, 3], "padding": "same"},
        {"type": "max_pooling2d", "pool_size": 2},
        {"type": "average_pooling2d", "pool_size": [2, 2], "strides": 1},
        {"type": "batch_normalization", "momentum": 0.9},
        {"type": "activation", "activation": "gelu"},
        {"type": "global_average_pooling2d"},
        {"type": "flatten"},
        {"type": "dense", "units": 10, "activation": "tanh", "use_bias": False},
        {"type": "dropout", "rate": 0.5},
    ]

    net = network.Network.model_validate({"layers": layers})

    assert [layer.type for layer in net.layers] == [layer["type"] for layer in layers]
    assert {layer["type"] for layer in layers} == set(network.LAYER_TYPES)


def test_validate_dense_defaults_to_relu() -> None:
    net = network.Network.model_validate({"layers": [{"type": "dense", "units": 50}]})

    assert net.layers[0] == network.Dense(type="dense", units=50, activation="relu")
    assert net.output_activation is None


def test_validate_dense_rejects_binary_step_with_gradient_reason() -> None:
    error = _network_error({"type": "dense", "units": 4, "activation": "binary_step"})

    assert error["loc"] == ("layers", 0, "dense", "activation")
    assert "cannot be trained by gradient descent" in error["msg"]
    assert "derivative is 0" in error["msg"]
    assert "sigmoid" in error["msg"]


def test_validate_output_activation_rejects_binary_step() -> None:
    with pytest.raises(ValidationError, match="cannot be trained by gradient descent") as caught:
        network.Network.model_validate(
            {"layers": [{"type": "dense", "units": 4}], "output_activation": "binary_step"}
        )

    assert caught.value.errors()[0]["loc"] == ("output_activation",)


@pytest.mark.parametrize("name", ["step", "heaviside", "sign"])
def test_validate_activation_rejects_other_zero_gradient_steps(name: str) -> None:
    error = _network_error({"type": "activation", "activation": name})

    assert "zero gradient" in error["msg"]


def test_validate_activation_rejects_glu_that_halves_the_width() -> None:
    error = _network_error({"type": "dense", "units": 4, "activation": "glu"})

    assert "halves the width" in error["msg"]
    assert "glu" not in network.ACTIVATIONS


def test_validate_activation_rejects_unknown_name() -> None:
    error = _network_error({"type": "dense", "units": 4, "activation": "relu7"})

    assert error["loc"] == ("layers", 0, "dense", "activation")
    assert "unknown activation 'relu7'" in error["msg"]
    assert "leaky_relu" in error["msg"]  # the choices are listed


def test_validate_layer_rejects_unknown_type() -> None:
    error = _network_error({"type": "lstm", "units": 4})

    assert error["loc"] == ("layers", 0)
    assert "'lstm'" in error["msg"]
    assert "'dense'" in error["msg"]  # the known types are listed


def test_validate_layer_rejects_lambda() -> None:
    error = _network_error({"type": "lambda", "function": "lambda x: x"})

    assert "'lambda'" in error["msg"]


@pytest.mark.parametrize("units", [0, -3])
def test_validate_dense_rejects_units_not_positive(units: int) -> None:
    error = _network_error({"type": "dense", "units": units})

    assert error["loc"] == ("layers", 0, "dense", "units")
    assert error["msg"] == "Input should be greater than 0"


def test_validate_dense_rejects_units_over_limit() -> None:
    error = _network_error({"type": "dense", "units": 65537})

    assert error["loc"] == ("layers", 0, "dense", "units")


@pytest.mark.parametrize(
    ("rate", "message"),
    [(1.0, "Input should be less than 1"), (-0.1, "Input should be greater than or equal to 0")],
)
def test_validate_dropout_rejects_rate_outside_range(rate: float, message: str) -> None:
    error = _network_error({"type": "dropout", "rate": rate})

    assert error["loc"] == ("layers", 0, "dropout", "rate")
    assert error["msg"] == message


def test_validate_layer_rejects_misspelled_argument() -> None:
    error = _network_error({"type": "dense", "units": 4, "activaton": "relu"})

    assert error["loc"] == ("layers", 0, "dense", "activaton")
    assert error["type"] == "extra_forbidden"


def test_validate_conv2d_rejects_three_dimensional_kernel() -> None:
    with pytest.raises(ValidationError, match="kernel_size"):
        network.Network.model_validate(
            {"layers": [{"type": "conv2d", "filters": 4, "kernel_size": [3, 3, 3]}]}
        )


def test_validate_network_rejects_no_layers() -> None:
    with pytest.raises(ValidationError, match="at least 1 item"):
        network.Network.model_validate({"layers": []})


def test_validate_optimizer_rejects_unknown_name() -> None:
    with pytest.raises(ValidationError, match="'adam'"):
        network.Optimizer.model_validate({"name": "adamm"})


def test_validate_optimizer_rejects_momentum_for_adam() -> None:
    with pytest.raises(ValidationError, match="momentum applies to sgd and rmsprop, not to adam"):
        network.Optimizer.model_validate({"name": "adam", "momentum": 0.9})


def test_validate_optimizer_accepts_momentum_for_sgd() -> None:
    optimizer = network.Optimizer.model_validate({"name": "sgd", "momentum": 0.9})

    assert (optimizer.name, optimizer.momentum, optimizer.learning_rate) == ("sgd", 0.9, 0.001)


@pytest.mark.parametrize("learning_rate", [0.0, -0.01])
def test_validate_optimizer_rejects_learning_rate_not_positive(learning_rate: float) -> None:
    with pytest.raises(ValidationError, match="learning_rate"):
        network.Optimizer.model_validate({"name": "adam", "learning_rate": learning_rate})


def test_validate_training_rejects_splits_leaving_too_few_rows() -> None:
    with pytest.raises(ValidationError, match="at least 5% of rows to train on"):
        Training.model_validate({"validation_split": 0.5, "test_split": 0.45})


@pytest.mark.parametrize("field", ["validation_split", "test_split"])
def test_validate_training_rejects_split_of_one(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        Training.model_validate({field: 1.0})


def test_validate_training_rejects_seed_out_of_range() -> None:
    with pytest.raises(ValidationError, match="seed"):
        Training.model_validate({"seed": 2**31})


def test_validate_training_leaves_task_defaults_unset() -> None:
    training = Training()

    assert (training.loss, training.metrics, training.epochs, training.seed) == (
        None,
        None,
        None,
        None,
    )
    assert (training.validation_split, training.test_split, training.batch_size) == (0.3, 0.0, 32)
    assert training.optimizer == network.Optimizer(name="adam", learning_rate=0.001)


@pytest.mark.parametrize(
    "example",
    [examples.CONCRETE_REGRESSION, examples.MNIST_CLASSIFIER, examples.PENGUINS_CLASSIFIER],
    ids=["concrete", "mnist", "penguins"],
)
def test_validate_job_accepts_docs_examples(example: dict[str, Any]) -> None:
    job = JobCreate.model_validate(example)

    assert job.model_dump(exclude_unset=True, mode="json") == example


def test_validate_job_accepts_target_list() -> None:
    job = JobCreate.model_validate(_job(target=["Strength", "Age"]))

    assert job.target == ["Strength", "Age"]
    assert job.preprocessing.normalize is True
    assert job.preprocessing.missing == "error"
    assert job.device == "auto"


def test_validate_job_rejects_unknown_task() -> None:
    with pytest.raises(ValidationError, match="'regression' or 'classification'"):
        JobCreate.model_validate(_job(task="clustering"))


def test_validate_job_rejects_unknown_missing_strategy() -> None:
    with pytest.raises(ValidationError, match="'error', 'drop' or 'mean'"):
        JobCreate.model_validate(_job(preprocessing={"missing": "median"}))


def test_validate_job_rejects_unknown_field() -> None:
    with pytest.raises(ValidationError) as caught:
        JobCreate.model_validate(_job(epochs=10))

    assert caught.value.errors()[0]["loc"] == ("epochs",)


def test_validate_job_rejects_unknown_device() -> None:
    with pytest.raises(ValidationError, match="device"):
        JobCreate.model_validate(_job(device="tpu"))


def test_validate_job_rejects_layer_error_with_its_path() -> None:
    body = _job(
        network={"layers": [{"type": "dense", "units": 8}, {"type": "dropout", "rate": 1.0}]}
    )

    with pytest.raises(ValidationError) as caught:
        JobCreate.model_validate(body)

    assert caught.value.errors()[0]["loc"] == ("network", "layers", 1, "dropout", "rate")
