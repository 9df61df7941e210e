"""Why a network does or does not learn, measured while it trains: after every epoch, one extra
forward and backward pass on a fixed probe batch gives each kernel's gradient norm and the share of
dead ReLU and saturated sigmoid/tanh units. At the end, predictions on the held-out rows give the
confusion matrix (classification) or a sample of predicted against actual values (regression).

The rules that turn these numbers into flags live in `service.diagnostics`.
"""

import logging
import math
import weakref
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from sqlalchemy.orm import Session

from service import diagnostics
from service.diagnostics import (
    ASYMPTOTES,
    DEAD_ACTIVATIONS,
    PROBE_ROWS,
    SATURATED_SHARE,
    SATURATION_EPS,
)
from service.leases import Attempt
from service.ml import builder
from service.ml import plan as plans
from service.ml.preprocessing import Prepared, Split

log = logging.getLogger(__name__)

PAIRS_KEPT = 500
_PROBES: weakref.WeakKeyDictionary[keras.Model, tuple[Any, list[dict[str, Any]]]] = (
    weakref.WeakKeyDictionary()
)  # (actual, predicted) pairs stored per target for the regression plot


def _activation(layer: keras.layers.Layer) -> str | None:
    activation = layer.get_config().get("activation")
    return activation if isinstance(activation, str) else None


def _rows(x: Any, index: np.ndarray) -> Any:
    return {name: values[index] for name, values in x.items()} if isinstance(x, dict) else x[index]


def _targets(plan: plans.Plan, y: np.ndarray) -> np.ndarray:
    if plan.task == "classification":
        return np.asarray(keras.utils.to_categorical(y, num_classes=plan.output_units))
    return y


class Diagnostics(keras.callbacks.Callback):
    """Measures the probe batch's per-layer gradient norms and unit statistics after every epoch.
    It runs before the EpochRecorder, which writes the row with the epoch's (`write`)."""

    async_safe = True  # epoch ends only

    def __init__(self, attempt: Attempt, plan: plans.Plan, train: Split, seed: int) -> None:
        super().__init__()
        self.attempt = attempt
        rows = np.random.default_rng(seed).permutation(len(train))[:PROBE_ROWS]
        x = builder.model_inputs(_rows(train.x, np.sort(rows)))
        self.x = tf.nest.map_structure(tf.convert_to_tensor, x)  # converted once, not per epoch
        self.y = tf.constant(_targets(plan, train.y[np.sort(rows)]), dtype="float32")
        self.loss = keras.losses.get(plan.loss)
        self._probe: Any = None
        self._layers: list[dict[str, Any]] = []
        self._failed = False
        self._measured: tuple[int, list[dict[str, Any]]] | None = None
        self._written = False

    def _build(self) -> None:
        # A model kept for the next job of its shape (workers.loop) keeps its probe: no new trace.
        if self.model in _PROBES:
            self._probe, self._layers = _PROBES[self.model]
            return
        # The output layer is a Dense layer, so it is always watched, and always last.
        watched = [
            layer
            for layer in self.model.layers
            if hasattr(layer, "kernel")
            or _activation(layer) in DEAD_ACTIVATIONS
            or _activation(layer) in ASYMPTOTES
        ]
        self._layers = [
            {
                "name": layer.name,
                "type": type(layer).__name__,
                "activation": _activation(layer),
                "kernel": hasattr(layer, "kernel"),
            }
            for layer in watched
        ]
        probe_model = keras.Model(
            inputs=self.model.input, outputs=[layer.output for layer in watched]
        )
        kernels = [layer.kernel for layer in watched if hasattr(layer, "kernel")]
        kinds = [_activation(layer) for layer in watched]

        # One graph, traced once: the kernels' gradient norms, then each layer's unit share, in
        # one tensor (one copy back per epoch). Without autograph (nothing here needs it) the
        # trace takes a third of the time.
        @tf.function(autograph=False)
        def probe(x: Any, y: tf.Tensor) -> tf.Tensor:
            with tf.GradientTape() as tape:
                activations = probe_model(x, training=False)
                loss = tf.reduce_mean(self.loss(y, activations[-1]))
            norms = [tf.norm(gradient) for gradient in tape.gradient(loss, kernels)]
            shares = [unit_share(a, kind) for a, kind in zip(activations, kinds, strict=True)]
            return tf.stack(norms + shares)

        self._probe = probe
        _PROBES[self.model] = (probe, self._layers)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._failed:
            return
        try:
            if self._probe is None:
                self._build()
            values = [float(value) for value in self._probe(self.x, self.y).numpy()]
        except Exception:  # diagnostics must never cost a job its training
            log.exception("job %s: diagnostics failed; training goes on", self.attempt.job_id)
            self._failed = True
            return
        kernels = sum(layer["kernel"] for layer in self._layers)
        self._measured = (epoch + 1, _measured(self._layers, values[:kernels], values[kernels:]))

    def write(self, session: Session, epoch: int) -> None:
        """Add this epoch's row to the transaction that writes its history row (EpochRecorder)."""
        if self._measured is not None and self._measured[0] == epoch:
            first = not self._written
            diagnostics.record(session, self.attempt.job_id, epoch, self._measured[1], first)
            self._written = True


def unit_share(activation: tf.Tensor, kind: str | None) -> tf.Tensor:
    """The share of the layer's units (last axis) that are dead / saturated; -1 where neither
    applies."""
    axes = list(range(len(activation.shape) - 1))
    if kind in DEAD_ACTIVATIONS:
        dead = tf.reduce_all(activation <= 0.0, axis=axes)
        return tf.reduce_mean(tf.cast(dead, "float32"))
    if kind in ASYMPTOTES:
        low, high = ASYMPTOTES[kind]
        near = (activation - low < SATURATION_EPS) | (high - activation < SATURATION_EPS)
        share = tf.reduce_mean(tf.cast(near, "float32"), axis=axes)
        return tf.reduce_mean(tf.cast(share >= SATURATED_SHARE, "float32"))
    return tf.constant(-1.0)


def _measured(
    layers: list[dict[str, Any]], norms: list[float], shares: list[float]
) -> list[dict[str, Any]]:
    """One row per watched layer: its kernel's gradient norm (None for an Activation layer, or
    when it is not finite), and the dead or saturated share where the activation has one."""
    kernel_norms = iter(norms)
    rows = []
    for layer, share in zip(layers, shares, strict=True):
        row = {key: value for key, value in layer.items() if key != "kernel"}
        norm = next(kernel_norms) if layer["kernel"] else None
        row["gradient_norm"] = norm if norm is None or math.isfinite(norm) else None
        row["gradient_finite"] = norm is None or math.isfinite(norm)
        row["dead_fraction"] = share if layer["activation"] in DEAD_ACTIVATIONS else None
        row["saturated_fraction"] = share if layer["activation"] in ASYMPTOTES else None
        rows.append(row)
    return rows


def held_out(model: keras.Model, plan: plans.Plan, prepared: Prepared) -> dict[str, Any] | None:
    """The confusion matrix (classification) or a sample of (actual, predicted) pairs
    (regression) on the test split, or the validation split without one; None without either."""
    split, name = (
        (prepared.test, "test")
        if prepared.test is not None
        else (prepared.validation, "validation")
    )
    if split is None or len(split) == 0:
        return None
    predicted = np.asarray(model.predict(builder.model_inputs(split.x), batch_size=1024, verbose=0))
    if plan.task == "classification":
        classes = plan.output_units
        matrix = np.zeros((classes, classes), dtype=np.int64)
        np.add.at(matrix, (split.y.astype(np.int64), predicted.argmax(axis=1)), 1)
        labels = plan.labels or list(range(classes))
        return {
            "split": name,
            "rows": len(split),
            "confusion_matrix": {"labels": labels, "counts": matrix.tolist()},
        }
    keep = np.sort(np.random.default_rng(0).permutation(len(split))[:PAIRS_KEPT])
    actual = np.asarray(split.y, dtype="float64").reshape(len(split), -1)[keep]
    predicted = predicted.astype("float64").reshape(len(split), -1)[keep]
    return {
        "split": name,
        "rows": len(split),
        "predicted_vs_actual": {
            target: {"actual": actual[:, i].tolist(), "predicted": predicted[:, i].tolist()}
            for i, target in enumerate(plan.targets)
        },
    }
