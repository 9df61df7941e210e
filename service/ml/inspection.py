"""Looking inside a trained model: forward propagation layer by layer (preprocessing layers
included) for one row, and each layer's weights. Both use the models cached for predictions."""

import threading
from typing import Any

import keras
import numpy as np
from cachetools import LRUCache

from service.core.config import get_settings
from service.core.errors import InvalidInput
from service.ml import inference

_lock = threading.Lock()
# storage key -> (the cached model, a model with every layer's output as an output)
_layer_models: LRUCache[str, tuple[keras.Model, keras.Model]] | None = None


def _layer_model(storage_key: str, model: keras.Model) -> keras.Model:
    global _layer_models
    with _lock:
        if _layer_models is None:
            _layer_models = LRUCache(maxsize=get_settings().prediction_cache_size)
        cached = _layer_models.get(storage_key)
    if cached is not None and cached[0] is model:
        return cached[1]
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    every_layer = keras.Model(inputs=model.input, outputs=[layer.output for layer in layers])
    with _lock:
        _layer_models[storage_key] = (model, every_layer)
    return every_layer


def _activation(layer: keras.layers.Layer) -> str | None:
    activation = layer.get_config().get("activation")
    return activation if isinstance(activation, str) else None


def stats(array: Any, max_values: int) -> dict[str, Any]:
    """Shape and min/max/mean/std of an array; its values too when there are few enough.
    Non-finite values are left out of the statistics and listed as null."""
    array = np.asarray(array)
    if array.dtype.kind in "OSU":  # text: a string input's raw value
        text = [v.decode() if isinstance(v, bytes) else str(v) for v in array.reshape(-1)]
        return {"shape": list(array.shape), "min": None, "max": None, "mean": None, "std": None,
                "text": text[:max_values]}  # fmt: skip
    numbers = array.astype("float64")
    finite = numbers[np.isfinite(numbers)]
    summary: dict[str, Any] = {"shape": list(array.shape)}
    for name, reduce in (("min", np.min), ("max", np.max), ("mean", np.mean), ("std", np.std)):
        summary[name] = float(reduce(finite)) if finite.size else None
    if numbers.size <= max_values:
        values = numbers.astype(object)
        values[~np.isfinite(numbers)] = None
        summary["values"] = values.tolist()
    return summary


def forward(storage_key: str, input_schema: dict[str, Any], instance: Any) -> list[dict[str, Any]]:
    """Every layer's output for one row, in order: the inputs as given, then each layer."""
    model = inference.loaded(storage_key)
    try:
        x = inference.inputs(input_schema, [instance])
    except InvalidInput as error:  # its pointer names /instances/0; this body has /instance
        field = error.field.replace("/instances/0", "/instance", 1) if error.field else None
        detail = error.detail.replace("instance 0", "the instance")
        raise InvalidInput(detail.replace("instances", "the instance"), field) from None
    every_layer = _layer_model(storage_key, model)
    outputs = every_layer.predict_on_batch(x)
    if not isinstance(outputs, list | tuple):
        outputs = [outputs]
    max_values = get_settings().inspect_max_values
    produced = iter(outputs)
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            value = x[layer.name] if isinstance(x, dict) else x
        else:
            value = next(produced)
        rows.append(
            {
                "name": layer.name,
                "type": type(layer).__name__,
                "activation": _activation(layer),
                "output": stats(np.asarray(value)[0], max_values),
            }
        )
    return rows


def weights(storage_key: str) -> list[dict[str, Any]]:
    """Each layer's weights (kernel, bias, normalization statistics, ...): shapes and statistics
    always, values for arrays up to DENDRITE_INSPECT_MAX_VALUES."""
    model = inference.loaded(storage_key)
    max_values = get_settings().inspect_max_values
    return [
        {
            "name": layer.name,
            "type": type(layer).__name__,
            "activation": _activation(layer),
            "parameters": int(layer.count_params()),
            "weights": [
                {"name": name, "trainable": trainable, "stats": stats(values, max_values)}
                for name, trainable, values in _arrays(layer)
            ],
        }
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer)
    ]


def _arrays(layer: keras.layers.Layer) -> list[tuple[str, bool, np.ndarray]]:
    arrays = [
        (variable.name, bool(variable.trainable), keras.ops.convert_to_numpy(variable))
        for variable in layer.weights
    ]
    if not arrays and isinstance(layer, keras.layers.Normalization):
        # Built from given statistics, Keras keeps them as constants rather than weights.
        arrays = [
            (name, False, keras.ops.convert_to_numpy(getattr(layer, name)))
            for name in ("mean", "variance")
            if getattr(layer, name, None) is not None
        ]
    return arrays
