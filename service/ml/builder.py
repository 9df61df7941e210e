"""A Keras Functional model from a plan: raw inputs, preprocessing layers, hidden layers, output.

Preprocessing lives inside the model (Normalization, StringLookup one-hot, pixel Rescaling), so a
saved model takes raw rows and the downloaded `.keras` file is self-contained.
"""

from typing import Any

import keras
from keras import layers

from service.ml.plan import IMAGE_LAYERS, Normalization, Plan
from service.schemas import network


def build(network: network.Network, plan: Plan, normalization: Normalization | None) -> keras.Model:
    if plan.data == "array":
        inputs, hidden = _array_inputs(plan, normalization)
        model_inputs: Any = inputs
    else:
        named, hidden = _tabular_inputs(plan, normalization)
        model_inputs = named
    for index, layer in enumerate(network.layers, start=1):
        if layer.type in IMAGE_LAYERS and len(hidden.shape) == 3:
            hidden = layers.Reshape((*hidden.shape[1:], 1), name=f"add_channel_{index}")(hidden)
        hidden = _layer(layer, f"{layer.type}_{index}")(hidden)
    outputs = layers.Dense(plan.output_units, activation=plan.output_activation, name="output")(
        hidden
    )
    return keras.Model(inputs=model_inputs, outputs=outputs, name="dendrite")


def _tabular_inputs(plan: Plan, normalization: Normalization | None) -> tuple[dict[str, Any], Any]:
    named: dict[str, Any] = {}
    numeric: list[Any] = []
    encoded: list[Any] = []
    for feature in plan.features:
        if feature.kind == "numeric":
            named[feature.input] = keras.Input(shape=(1,), name=feature.input, dtype="float32")
            numeric.append(named[feature.input])
        else:
            named[feature.input] = keras.Input(shape=(1,), name=feature.input, dtype="string")
            lookup = layers.StringLookup(
                vocabulary=[str(value) for value in feature.categories or []] or None,
                output_mode="one_hot",
                name=f"{feature.input}_one_hot",
            )
            encoded.append(lookup(named[feature.input]))
    parts: list[Any] = []
    if numeric:
        joined = numeric[0] if len(numeric) == 1 else layers.Concatenate(name="numeric")(numeric)
        if normalization is not None:
            joined = layers.Normalization(
                mean=normalization.mean, variance=normalization.variance, name="normalize"
            )(joined)
        parts.append(joined)
    parts.extend(encoded)
    hidden = parts[0] if len(parts) == 1 else layers.Concatenate(name="features")(parts)
    return named, hidden


def _array_inputs(plan: Plan, normalization: Normalization | None) -> tuple[Any, Any]:
    inputs = keras.Input(shape=tuple(plan.sample_shape), name="x", dtype="float32")
    hidden: Any = inputs
    if plan.scale_pixels:
        hidden = layers.Rescaling(1.0 / 255.0, name="scale_pixels")(hidden)
    elif normalization is not None:
        hidden = layers.Normalization(
            mean=float(normalization.mean),
            variance=float(normalization.variance),
            axis=None,
            name="normalize",
        )(hidden)
    return inputs, hidden


def _layer(layer: Any, name: str) -> layers.Layer:
    match layer:
        case network.Dense():
            return layers.Dense(
                layer.units, activation=layer.activation, use_bias=layer.use_bias, name=name
            )
        case network.Dropout():
            return layers.Dropout(layer.rate, name=name)
        case network.BatchNormalization():
            return layers.BatchNormalization(
                momentum=layer.momentum, epsilon=layer.epsilon, name=name
            )
        case network.Flatten():
            return layers.Flatten(name=name)
        case network.ActivationLayer():
            return layers.Activation(layer.activation, name=name)
        case network.Conv2D():
            return layers.Conv2D(
                layer.filters,
                layer.kernel_size,
                strides=layer.strides,
                padding=layer.padding,
                activation=layer.activation,
                name=name,
            )
        case network.MaxPooling2D():
            return layers.MaxPooling2D(
                layer.pool_size, strides=layer.strides, padding=layer.padding, name=name
            )
        case network.AveragePooling2D():
            return layers.AveragePooling2D(
                layer.pool_size, strides=layer.strides, padding=layer.padding, name=name
            )
        case network.GlobalAveragePooling2D():
            return layers.GlobalAveragePooling2D(name=name)
    raise ValueError(f"unknown layer type {layer.type!r}")


def compile_model(
    model: keras.Model, plan: Plan, optimizer: network.Optimizer, steps_per_execution: int = 1
) -> None:
    options: dict[str, Any] = {"learning_rate": optimizer.learning_rate}
    if optimizer.momentum is not None:
        options["momentum"] = optimizer.momentum
    keras_optimizer = keras.optimizers.get({"class_name": optimizer.name, "config": options})
    model.compile(
        optimizer=keras_optimizer,
        loss=plan.loss,
        metrics=list(plan.metrics),
        steps_per_execution=steps_per_execution,
    )


def summarize(model: keras.Model) -> list[dict[str, Any]]:
    """Each layer after the inputs: name, type, output shape and parameter count."""
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        rows.append(
            {
                "name": layer.name,
                "type": type(layer).__name__,
                "output_shape": list(layer.output.shape),
                "parameters": int(layer.count_params()),
            }
        )
    return rows


def model_inputs(x: Any) -> Any:
    """Numpy arrays as the model takes them: text columns become tf.string tensors."""
    import tensorflow as tf

    if isinstance(x, dict):
        return {
            name: tf.constant(values.astype(str)) if values.dtype == object else values
            for name, values in x.items()
        }
    return x
