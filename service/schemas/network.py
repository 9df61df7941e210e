"""What a network may be: the closed lists of layers, activations, losses, optimizers and metrics.

Pure Python (no TensorFlow), so the API validates a request without loading Keras. Every name here
is one Keras resolves by string; `tests/ml/test_builder.py` checks that against the installed Keras.
"""

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

ACTIVATIONS = (
    "linear", "sigmoid", "tanh", "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu",
    "silu", "swish", "mish", "softmax", "log_softmax", "softplus", "softsign",
    "hard_sigmoid", "hard_silu", "hard_swish", "hard_tanh", "log_sigmoid", "exponential",
    "sparse_plus", "squareplus", "tanh_shrink", "hard_shrink", "soft_shrink", "sparsemax",
)  # fmt: skip

_NOT_TRAINABLE = {
    "binary_step": (
        "'binary_step' cannot be trained by gradient descent: its derivative is 0 everywhere "
        "(and undefined at 0), so backpropagation passes no gradient through it and the weights "
        "never change. Use 'sigmoid' or 'hard_sigmoid' for a smooth step, or 'relu'."
    ),
    "step": "'step' has a zero gradient everywhere; use 'sigmoid' or 'hard_sigmoid' instead.",
    "heaviside": "'heaviside' has a zero gradient everywhere; use 'sigmoid' instead.",
    "sign": "'sign' has a zero gradient everywhere; use 'tanh' or 'softsign' instead.",
}
# Keras resolves these, but its layers assume an activation keeps the shape of its input.
_SHAPE_CHANGING = {
    "glu": (
        "'glu' halves the width of its input, which Keras layers do not account for: the next "
        "layer would get half the inputs it was built for. Use 'swish', 'silu' or 'gelu' instead."
    ),
}


def _check_activation(name: str) -> str:
    if name in _NOT_TRAINABLE:
        raise ValueError(_NOT_TRAINABLE[name])
    if name in _SHAPE_CHANGING:
        raise ValueError(_SHAPE_CHANGING[name])
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{name}'; choose one of: {', '.join(ACTIVATIONS)}")
    return name


Activation = Annotated[
    str,
    AfterValidator(_check_activation),
    Field(description=f"A Keras activation by name: {', '.join(ACTIVATIONS)}.", examples=["relu"]),
]

REGRESSION_LOSSES = (
    "mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
    "mean_squared_logarithmic_error", "huber", "log_cosh",
)  # fmt: skip
CLASSIFICATION_LOSSES = (
    "categorical_crossentropy", "binary_crossentropy", "categorical_focal_crossentropy",
    "kl_divergence", "categorical_hinge", "mean_squared_error",
)  # fmt: skip
REGRESSION_METRICS = (
    "mae", "mse", "mape", "msle", "root_mean_squared_error", "r2_score", "log_cosh_error",
)  # fmt: skip
CLASSIFICATION_METRICS = (
    "accuracy", "categorical_accuracy", "top_k_categorical_accuracy", "auc", "precision", "recall",
    "categorical_crossentropy", "mse", "mae",
)  # fmt: skip
OPTIMIZERS = (
    "adam",
    "adamw",
    "sgd",
    "rmsprop",
    "adagrad",
    "adadelta",
    "adamax",
    "nadam",
    "ftrl",
    "lion",
)

Padding = Literal["valid", "same"]
PositiveInt = Annotated[int, Field(gt=0)]
Size2D = PositiveInt | Annotated[list[PositiveInt], Field(min_length=2, max_length=2)]


class _Layer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Dense(_Layer):
    type: Literal["dense"]
    units: PositiveInt = Field(description="Number of neurons.", le=65536)
    activation: Activation = "relu"
    use_bias: bool = True


class Dropout(_Layer):
    type: Literal["dropout"]
    rate: float = Field(ge=0.0, lt=1.0, description="Fraction of inputs dropped, in [0, 1).")


class BatchNormalization(_Layer):
    type: Literal["batch_normalization"]
    momentum: float = Field(default=0.99, gt=0.0, lt=1.0)
    epsilon: float = Field(default=0.001, gt=0.0)


class Flatten(_Layer):
    type: Literal["flatten"]


class ActivationLayer(_Layer):
    type: Literal["activation"]
    activation: Activation


class Conv2D(_Layer):
    type: Literal["conv2d"]
    filters: PositiveInt = Field(le=4096)
    kernel_size: Size2D = 3
    strides: Size2D = 1
    padding: Padding = "valid"
    activation: Activation = "relu"


class MaxPooling2D(_Layer):
    type: Literal["max_pooling2d"]
    pool_size: Size2D = 2
    strides: Size2D | None = None
    padding: Padding = "valid"


class AveragePooling2D(_Layer):
    type: Literal["average_pooling2d"]
    pool_size: Size2D = 2
    strides: Size2D | None = None
    padding: Padding = "valid"


class GlobalAveragePooling2D(_Layer):
    type: Literal["global_average_pooling2d"]


Layer = Annotated[
    Dense
    | Dropout
    | BatchNormalization
    | Flatten
    | ActivationLayer
    | Conv2D
    | MaxPooling2D
    | AveragePooling2D
    | GlobalAveragePooling2D,
    Field(discriminator="type"),
]
LAYER_TYPES = (
    "dense", "dropout", "batch_normalization", "flatten", "activation", "conv2d", "max_pooling2d",
    "average_pooling2d", "global_average_pooling2d",
)  # fmt: skip


class Network(BaseModel):
    """Hidden layers in order; the output layer is added from the task and the data."""

    model_config = ConfigDict(extra="forbid")

    layers: list[Layer] = Field(
        min_length=1, description="At most DENDRITE_MAX_LAYERS (default 100) layers."
    )
    output_activation: Activation | None = Field(
        default=None,
        description="Default: linear for regression, softmax for classification.",
    )


class Optimizer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal[OPTIMIZERS] = "adam"  # type: ignore[valid-type]
    learning_rate: float = Field(default=0.001, gt=0.0, le=10.0)
    momentum: float | None = Field(
        default=None, ge=0.0, lt=1.0, description="sgd and rmsprop only."
    )

    @model_validator(mode="after")
    def _momentum_applies(self) -> "Optimizer":
        if self.momentum is not None and self.name not in ("sgd", "rmsprop"):
            raise ValueError(f"momentum applies to sgd and rmsprop, not to {self.name}")
        return self


class EarlyStopping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    monitor: str = "val_loss"
    patience: int = Field(default=10, ge=0)
    min_delta: float = Field(default=0.0, ge=0.0)
    restore_best_weights: bool = True
