"""Output shapes and parameter counts of a network, worked out in plain Python (no TensorFlow),
and the memory training it takes (`training_memory`).

The API checks a network against its limits before queueing it without loading Keras. Names, shapes
and counts follow `service.ml.builder` layer for layer (including the channel axis it adds before an
image layer); `tests/ml/test_shapes.py` holds them against the models Keras builds.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from math import prod
from typing import Any

from service.core.errors import InvalidInput
from service.schemas import network

Shape = tuple[int, ...]  # one sample's shape, without the batch axis
_IMAGE_LAYERS = ("conv2d", "max_pooling2d", "average_pooling2d", "global_average_pooling2d")


@dataclass(frozen=True)
class LayerShape:
    name: str  # as the builder names the Keras layer: "dense_1", "add_channel_2", "output"
    index: int | None  # the position in network.layers; None for layers dendrite adds
    output_shape: Shape
    parameters: int


def infer(
    layers: Sequence[network.Layer], input_shape: Shape, output_units: int
) -> list[LayerShape]:
    """Every layer after the inputs, the output layer last; an `InvalidInput` names a layer that
    cannot take the shape it is given."""
    shape = input_shape
    rows: list[LayerShape] = []
    for index, layer in enumerate(layers):
        field = f"/network/layers/{index}"
        if layer.type in _IMAGE_LAYERS:
            if len(shape) == 2:  # a grey image: the builder adds a channel axis
                shape = (*shape, 1)
                rows.append(LayerShape(f"add_channel_{index + 1}", None, shape, 0))
            if len(shape) != 3:
                raise InvalidInput(
                    f"layer {index} ({layer.type}) needs images (height x width [x channels]), "
                    f"but its input has shape {list(shape)}",
                    field=field,
                )
        shape, parameters = _layer(layer, shape, index)
        rows.append(LayerShape(f"{layer.type}_{index + 1}", index, shape, parameters))
    if len(shape) != 1:
        last = len(layers) - 1
        raise InvalidInput(
            f"the last hidden layer ({last}, {layers[last].type}) gives each row the shape "
            f"{list(shape)}, but the output layer needs a flat vector; end the network with a "
            "'flatten' or 'global_average_pooling2d' layer",
            field=f"/network/layers/{last}",
        )
    rows.append(LayerShape("output", None, (output_units,), _dense(shape, output_units, True)))
    return rows


def _layer(layer: Any, shape: Shape, index: int) -> tuple[Shape, int]:
    what, field = f"layer {index} ({layer.type})", f"/network/layers/{index}"
    match layer:
        case network.Dense():
            if not shape:
                raise InvalidInput(f"{what} needs inputs with at least one axis", field=field)
            return (*shape[:-1], layer.units), _dense(shape, layer.units, layer.use_bias)
        case network.Dropout() | network.ActivationLayer():
            return shape, 0
        case network.BatchNormalization():
            # gamma and beta (trained), moving mean and variance (not trained): 4 per channel.
            return shape, 4 * (shape[-1] if shape else 1)
        case network.Flatten():
            return (prod(shape),), 0
        case network.GlobalAveragePooling2D():
            return (shape[-1],), 0
        case network.Conv2D():
            kernel = _pair(layer.kernel_size)
            height, width = _window(shape, kernel, _pair(layer.strides), layer.padding, what, field)
            channels = shape[-1]
            parameters = kernel[0] * kernel[1] * channels * layer.filters + layer.filters
            return (height, width, layer.filters), parameters
        case network.MaxPooling2D() | network.AveragePooling2D():
            pool = _pair(layer.pool_size)
            strides = pool if layer.strides is None else _pair(layer.strides)
            height, width = _window(shape, pool, strides, layer.padding, what, field)
            return (height, width, shape[-1]), 0
    raise ValueError(f"unknown layer type {layer.type!r}")


def _dense(shape: Shape, units: int, use_bias: bool) -> int:
    return shape[-1] * units + (units if use_bias else 0)


def _pair(size: int | list[int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (size[0], size[1])


def _window(
    shape: Shape,
    window: tuple[int, int],
    strides: tuple[int, int],
    padding: str,
    what: str,
    field: str,
) -> tuple[int, int]:
    """Height and width after a sliding window (Keras' conv and pooling arithmetic)."""
    if padding == "same":
        return (-(-shape[0] // strides[0]), -(-shape[1] // strides[1]))
    if window[0] > shape[0] or window[1] > shape[1]:
        raise InvalidInput(
            f"{what} slides a {window[0]}x{window[1]} window over a {shape[0]}x{shape[1]} input, "
            "which is smaller than the window; use a smaller window, padding 'same', or fewer "
            "pooling and convolution layers before it",
            field=field,
        )
    return ((shape[0] - window[0]) // strides[0] + 1, (shape[1] - window[1]) // strides[1] + 1)


# Training memory, in float32 values (4 bytes): every weight has a gradient and the optimizer's
# state (its slots per weight, below); every layer's output for the batch is kept for the backward
# pass, which makes a gradient as large (and the activation function's input, for most layers).
BYTES_PER_VALUE = 4
BACKWARD_FACTOR = 2
OPTIMIZER_SLOTS = {
    "adam": 2, "adamw": 2, "nadam": 2, "adamax": 2, "adadelta": 2, "ftrl": 2,
    "rmsprop": 1, "adagrad": 1, "lion": 1, "sgd": 0,
}  # fmt: skip


@dataclass(frozen=True)
class Memory:
    """Bytes one training step holds: the weights with their gradients and optimizer state, each
    layer's activations for a batch (forward and backward), and the input batch."""

    batch_size: int  # the batch as trained: at most the dataset's rows
    weights_bytes: int
    activations_bytes: int
    input_bytes: int
    per_layer: list[tuple[LayerShape, int]]  # each layer's weights and activations

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.activations_bytes + self.input_bytes

    def largest(self) -> tuple[LayerShape, int]:
        return max(self.per_layer, key=lambda pair: pair[1])


def optimizer_slots(name: str, momentum: float | None) -> int:
    """Values the optimizer keeps per weight (Keras 3): moments, accumulators, velocities."""
    extra = 1 if name in ("sgd", "rmsprop") and momentum else 0
    return OPTIMIZER_SLOTS.get(name, 2) + extra


def training_memory(
    layers: Sequence[LayerShape], input_shape: Shape, batch_size: int, slots: int
) -> Memory:
    per_layer = []
    for layer in layers:
        weights = layer.parameters * (2 + slots) * BYTES_PER_VALUE
        activations = batch_size * prod(layer.output_shape) * BYTES_PER_VALUE * BACKWARD_FACTOR
        per_layer.append((layer, weights + activations))
    weights_total = sum(layer.parameters for layer in layers) * (2 + slots) * BYTES_PER_VALUE
    return Memory(
        batch_size=batch_size,
        weights_bytes=weights_total,
        activations_bytes=sum(size for _, size in per_layer) - weights_total,
        input_bytes=batch_size * prod(input_shape) * BYTES_PER_VALUE,
        per_layer=per_layer,
    )
