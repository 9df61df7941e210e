"""Predictions in the API process from an LRU cache of loaded models.

Each call is one call of the model's compiled forward pass (no per-call `model.predict()`, whose
fixed overhead is tens of milliseconds, nor `predict_on_batch`'s per-call dispatch). Rows are
checked and converted here, so bad rows get a 422 naming the row and field.
"""

import threading
from typing import Any

import keras
import numpy as np
from cachetools import LRUCache

from service.core import storage
from service.core.config import get_settings
from service.core.errors import InvalidInput
from service.ml import artifacts, builder

_lock = threading.Lock()
_cache: "LRUCache[str, Served] | None" = None
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class Served:
    """A loaded model and its forward pass as TensorFlow concrete functions, one per input
    signature (dtypes and shapes past the batch axis). Calling one skips what `predict_on_batch`
    does on every call (tracing-type dispatch, the predict step's data handling): half of a
    one-row prediction's time, measured. Same layers, same weights, same numbers."""

    def __init__(self, model: keras.Model) -> None:
        import tensorflow as tf

        self.model = model
        self.functions: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()
        self._forward = tf.function(self._call, autograph=False, reduce_retracing=True)

    def _call(self, inputs: Any) -> Any:
        return self.model(inputs, training=False)

    def predict(self, inputs: Any) -> np.ndarray:
        import tensorflow as tf

        tensors = tf.nest.map_structure(tf.convert_to_tensor, inputs)
        named = sorted(tensors.items()) if isinstance(tensors, dict) else [("", tensors)]
        signature = tuple((name, t.dtype.name, tuple(t.shape[1:])) for name, t in named)
        function = self.functions.get(signature)
        if function is None:
            specs = tf.nest.map_structure(
                lambda t: tf.TensorSpec((None, *t.shape[1:]), t.dtype), tensors
            )
            with self._lock:
                function = self.functions.get(signature)
                if function is None:
                    function = self._forward.get_concrete_function(specs)
                    self.functions[signature] = function
        return np.asarray(function(tensors))


def served(storage_key: str) -> Served:
    """The model from the cache, loaded on first use."""
    global _cache
    with _lock:
        if _cache is None:
            _cache = LRUCache(maxsize=get_settings().prediction_cache_size)
        entry = _cache.get(storage_key)
    if entry is None:
        with storage.local_file(storage_key) as path:  # a temporary copy from a remote store
            entry = Served(artifacts.load(path))
        with _lock:
            _cache[storage_key] = entry
    return entry


def predict(
    storage_key: str, input_schema: dict[str, Any], outputs: dict[str, Any], instances: list[Any]
) -> list[Any]:
    if input_schema["kind"] == "array":
        inputs: Any = _array_inputs(input_schema, instances)
    else:
        inputs = tabular_inputs(input_schema, instances)
    raw = served(storage_key).predict(builder.model_inputs(inputs))
    labels = outputs.get("labels")
    if labels is not None:
        return [
            {
                "label": labels[int(np.argmax(row))],
                "probabilities": {
                    str(label): float(p) for label, p in zip(labels, row, strict=True)
                },
            }
            for row in raw
        ]
    targets = outputs["targets"]
    return [{t: float(v) for t, v in zip(targets, row, strict=True)} for row in raw]


def tabular_inputs(schema: dict[str, Any], instances: list[Any]) -> dict[str, np.ndarray]:
    """Rows of {feature: raw value} as the model's inputs by input name: column by column where
    every value is plainly valid, else row by row, each value checked."""
    fast = tabular_inputs_fast(schema, instances)
    return fast if fast is not None else tabular_inputs_checked(schema, instances)


def tabular_inputs_fast(
    schema: dict[str, Any], instances: list[Any]
) -> dict[str, np.ndarray] | None:
    """The inputs, column by column, when every value is plainly valid; None when any value needs
    a closer look (a missing value, a wrong type, a number out of range), so that the checked
    path below finds and names the first fault exactly as before."""
    if not all(type(row) is dict for row in instances):
        return None
    inputs: dict[str, np.ndarray] = {}
    for feature in schema["features"]:
        name, fill = feature["name"], feature.get("fill")
        values = [row.get(name) for row in instances]
        if fill is not None:
            values = [fill if value is None else value for value in values]
        if feature["kind"] == "numeric":
            if not all(type(value) is float or type(value) is int for value in values):
                return None
            try:
                wide = np.asarray(values, dtype="float64")
            except OverflowError:
                return None
            if not (np.abs(wide) <= _FLOAT32_MAX).all():  # NaN fails too
                return None
            # Converted from the values themselves, exactly as the checked path does.
            inputs[feature["input"]] = np.asarray(values, dtype="float32").reshape(-1, 1)
        else:
            if not all(type(value) is str for value in values):
                return None
            inputs[feature["input"]] = np.asarray(values, dtype=object).reshape(-1, 1)
    return inputs


def tabular_inputs_checked(schema: dict[str, Any], instances: list[Any]) -> dict[str, np.ndarray]:
    """The inputs, row by row: the first value that is missing without a fill, of the wrong type
    or out of float32's range raises InvalidInput naming its row and feature."""
    columns: dict[str, list[Any]] = {f["input"]: [] for f in schema["features"]}
    for row_index, row in enumerate(instances):
        if not isinstance(row, dict):
            raise InvalidInput(
                f"instance {row_index} must be an object of feature values",
                f"/instances/{row_index}",
            )
        for feature in schema["features"]:
            name = feature["name"]
            pointer = f"/instances/{row_index}/{name}"
            value = row.get(name)
            if value is None:
                if name not in row and feature.get("fill") is None:
                    raise InvalidInput(f"instance {row_index} lacks feature '{name}'", pointer)
                if feature.get("fill") is None:
                    raise InvalidInput(
                        f"instance {row_index} has no value for '{name}', and the model was "
                        "trained without filling missing values",
                        pointer,
                    )
                value = feature["fill"]
            if feature["kind"] == "numeric":
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise InvalidInput(
                        f"feature '{name}' of instance {row_index} must be a number, not "
                        f"{type(value).__name__} {value!r}",
                        pointer,
                    )
                # JSON parsers accept NaN and Infinity; the model computes in float32.
                if not -_FLOAT32_MAX <= value <= _FLOAT32_MAX:
                    raise InvalidInput(
                        f"feature '{name}' of instance {row_index} must be a finite number "
                        "between -3.4e38 and 3.4e38",
                        pointer,
                    )
            elif not isinstance(value, str | int | float) or isinstance(value, bool):
                raise InvalidInput(
                    f"feature '{name}' of instance {row_index} must be a string, not "
                    f"{type(value).__name__}",
                    pointer,
                )
            columns[feature["input"]].append(value)
    kinds = {f["input"]: f["kind"] for f in schema["features"]}
    return {
        key: (
            np.asarray(values, dtype="float32").reshape(-1, 1)
            if kinds[key] == "numeric"
            else np.asarray([str(v) for v in values], dtype=object).reshape(-1, 1)
        )
        for key, values in columns.items()
    }


def _array_inputs(schema: dict[str, Any], instances: list[Any]) -> np.ndarray:
    shape = tuple(schema["shape"])
    try:
        array = np.asarray(instances, dtype="float32")
    except (ValueError, TypeError):
        raise InvalidInput(
            f"instances must be numeric arrays of shape {list(shape)}", "/instances"
        ) from None
    if array.shape[1:] != shape:
        raise InvalidInput(
            f"each instance must have shape {list(shape)}; got {list(array.shape[1:])}",
            "/instances",
        )
    if not np.isfinite(array).all():
        raise InvalidInput("instances hold NaN or infinite values", "/instances")
    return array


def evict(storage_key: str) -> None:
    with _lock:
        if _cache is not None:
            _cache.pop(storage_key, None)


def loaded(storage_key: str) -> keras.Model:
    """The model from the cache, loaded on first use (for inspection: forward pass, weights)."""
    return served(storage_key).model


def inputs(input_schema: dict[str, Any], instances: list[Any]) -> Any:
    """Rows checked and converted as `predict` takes them, in the form the model takes."""
    if input_schema["kind"] == "array":
        return _array_inputs(input_schema, instances)
    return builder.model_inputs(tabular_inputs(input_schema, instances))
