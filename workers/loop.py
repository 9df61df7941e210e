"""The training loop: a compiled Keras model trained an epoch at a time, each epoch's batches in as
few calls into TensorFlow as stopping in time allows, and its validation pass in one more.

Keras' `fit` spends about 10 ms of Python per epoch around the arithmetic (a new dataset iterator,
a separate `evaluate` with its own iterator, log conversions, callback dispatch); on the course's
networks an epoch's arithmetic takes a few milliseconds, so most of a small job was that overhead.
Here the split's rows live in tensors once, an epoch's order is drawn from (seed, epoch), and one
compiled function runs a run of steps (`Model.train_step`, so losses, metrics and optimizers are
Keras' own), another the validation pass (`Model.test_step`). Callbacks see what `fit` gives them:
`on_train_begin`, `on_epoch_begin`/`on_epoch_end` with the epoch's logs (`val_`-prefixed validation
metrics), `on_train_end`, and `model.stop_training`.

An epoch's order depends only on the seed and the epoch, so a job resumed from a checkpoint after
epoch k draws the orders an uninterrupted run would have from epoch k + 1 on.

Tracing those functions costs about 0.3 s, more than 20 epochs of a small network. A process keeps
its last few loops (`kept`): a later job whose network has the same shape (a sweep's trials, a
repeated experiment, the same request again) trains the kept model, its freshly built weights and
random state copied in and its optimizer reset, and traces nothing.
"""

import hashlib
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from service.ml import builder
from service.ml import plan as plans
from service.ml.preprocessing import Split

# A call into TensorFlow runs about this long at most, so that a stop request (cancel, time limit,
# another attempt holding the job) is seen within it, even inside a long epoch.
CALL_SECONDS = 0.25
FIRST_CALL_STEPS = 64  # until the time a step takes is known
EVALUATE_BATCH_FACTOR = 2  # no gradients kept: twice the rows in the memory a training batch takes
LOOPS_KEPT = 4  # per process; each holds a model, its optimizer state and two traced functions

Tensors = tuple[Any, tf.Tensor]


def targets(plan: plans.Plan, split: Split) -> np.ndarray:
    """The split's targets as the model's loss takes them (one-hot for classification)."""
    if plan.task == "classification":
        return np.asarray(keras.utils.to_categorical(split.y, num_classes=plan.output_units))
    return np.asarray(split.y)


def tensors(plan: plans.Plan, split: Split) -> Tensors:
    """The split's inputs and targets as tensors, converted once for every epoch."""
    x = tf.nest.map_structure(tf.convert_to_tensor, builder.model_inputs(split.x))
    y = tf.convert_to_tensor(targets(plan, split))
    if "GPU" in tf.constant(0.0).device:  # on the job's card once, not copied there every call
        x, y = tf.nest.map_structure(_on_device, x), tf.identity(y)
    return x, y


def _on_device(tensor: tf.Tensor) -> tf.Tensor:
    return tensor if tensor.dtype == tf.string else tf.identity(tensor)


def seed(value: int) -> None:
    """Seed Python's, NumPy's and Keras' generators (`keras.utils.set_random_seed`), but not
    TensorFlow's eager global seed: setting that clears TensorFlow's cache of instantiated
    functions, and a kept loop's first call would pay ~0.1 s to instantiate them again. Nothing
    here draws from it: Keras' initializers and layers draw their seeds from Python's `random` and
    their own seed generators, epoch orders come from NumPy."""
    with tf.Graph().as_default():  # TensorFlow's part then seeds this throwaway graph only
        keras.utils.set_random_seed(value)


def _spec(tensor: tf.Tensor) -> tf.TensorSpec:
    return tf.TensorSpec([None, *tensor.shape[1:]], tensor.dtype)


def _rows(x: Any, begin: Any, end: Any) -> Any:
    return tf.nest.map_structure(lambda t: t[begin:end], x)


class Loop:
    """Trains `model` (compiled) on `train`, validating on `validation` after every epoch."""

    def __init__(
        self,
        model: keras.Model,
        train: Tensors,
        validation: Tensors | None,
        batch_size: int,
        seed: int,
    ) -> None:
        self.model = model
        self.use(train, validation, batch_size, seed)
        self._step_seconds: float | None = None
        x_spec = tf.nest.map_structure(_spec, train[0])
        y_spec = _spec(train[1])
        scalar = tf.TensorSpec([], tf.int32)
        order = tf.TensorSpec([None], tf.int32)
        self._train_steps = tf.function(
            self._train_steps_graph,
            input_signature=[x_spec, y_spec, order, scalar, scalar, scalar],
        )
        self._test_steps = tf.function(
            self._test_steps_graph, input_signature=[x_spec, y_spec, scalar]
        )
        # The optimizer's variables (step count, moments) as a fresh model starts them.
        model.optimizer.build(model.trainable_variables)
        self._optimizer_start = [v.numpy() for v in model.optimizer.variables]

    def use(self, train: Tensors, validation: Tensors | None, batch_size: int, seed: int) -> None:
        """Train on these rows from now on (a kept loop's next job)."""
        self.train, self.validation = train, validation
        self.batch_size, self.seed = batch_size, seed
        self.rows = int(train[1].shape[0])
        self.steps = max(1, math.ceil(self.rows / batch_size))

    def forget_data(self) -> None:
        """Drop the last job's rows (a kept loop holds only its model between jobs)."""
        self.train = self.validation = None  # type: ignore[assignment]

    def adopt(self, model: keras.Model) -> bool:
        """Start over as `model` would (same shape, freshly built and compiled): copy its weights
        and random state, reset the optimizer and the metrics. False when the shapes differ."""
        mine, theirs = self.model.variables, model.variables
        if len(mine) != len(theirs) or any(
            a.shape != b.shape or a.dtype != b.dtype for a, b in zip(mine, theirs, strict=True)
        ):
            return False
        for kept, fresh in zip(mine, theirs, strict=True):
            kept.assign(fresh.value)
        optimizer = self.model.optimizer
        for variable, value in zip(optimizer.variables, self._optimizer_start, strict=True):
            variable.assign(value)
        optimizer.learning_rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
        self.model.reset_metrics()
        self._step_seconds = None
        return True

    def _train_steps_graph(
        self,
        x: Any,
        y: tf.Tensor,
        order: tf.Tensor,
        first: tf.Tensor,
        last: tf.Tensor,
        size: tf.Tensor,
    ) -> dict[str, tf.Tensor]:
        rows = tf.shape(order)[0]
        for step in tf.range(first, last):
            index = order[step * size : tf.minimum((step + 1) * size, rows)]
            batch = tf.nest.map_structure(lambda t, i=index: tf.gather(t, i), x)
            self.model.train_step((batch, tf.gather(y, index)))
        results: dict[str, tf.Tensor] = self.model.get_metrics_result()
        return results

    def _test_steps_graph(self, x: Any, y: tf.Tensor, size: tf.Tensor) -> dict[str, tf.Tensor]:
        rows = tf.shape(y)[0]
        for step in tf.range((rows + size - 1) // size):
            begin, end = step * size, tf.minimum((step + 1) * size, rows)
            self.model.test_step((_rows(x, begin, end), y[begin:end]))
        results: dict[str, tf.Tensor] = self.model.get_metrics_result()
        return results

    def trace(self) -> None:
        """Trace (compile) both functions now, before the first epoch, so the first epoch's time is
        the epoch's alone (`job.timings`: trace, first_epoch)."""
        x, y = self.train
        size = tf.constant(self.batch_size)
        self._train_steps.get_concrete_function(
            x, y, self.order(0), tf.constant(0), tf.constant(self.steps), size
        )
        self._test_steps.get_concrete_function(x, y, size)

    def order(self, epoch: int) -> tf.Tensor:
        """The rows of epoch `epoch` (0-based), in the order they are trained."""
        permutation = np.random.default_rng([self.seed, epoch]).permutation(self.rows)
        return tf.constant(permutation.astype(np.int32))

    def evaluate(self, x: Any, y: tf.Tensor) -> dict[str, float]:
        """The compiled loss and metrics on (x, y), as `Model.evaluate` gives them."""
        self.model.reset_metrics()
        size = tf.constant(self.batch_size * EVALUATE_BATCH_FACTOR)
        return {name: float(value) for name, value in self._test_steps(x, y, size).items()}

    def fit(
        self,
        epochs: int,
        callbacks: list[keras.callbacks.Callback],
        *,
        initial_epoch: int = 0,
        interrupt: Callable[[], bool] = lambda: False,
    ) -> keras.callbacks.History:
        """Train epochs `initial_epoch` + 1 ... `epochs`; between calls into TensorFlow, stop
        (mid-epoch) when `interrupt()` says so, and at an epoch end when a callback set
        `model.stop_training`."""
        model, history = self.model, keras.callbacks.History()
        hooks = keras.callbacks.CallbackList(
            [*callbacks, history], model=model, epochs=epochs, steps=self.steps, verbose=0
        )
        model.stop_training = False
        hooks.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            hooks.on_epoch_begin(epoch)
            logs = self._epoch(epoch, interrupt)
            if logs is None:  # interrupted mid-epoch: that epoch is not recorded
                break
            hooks.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
        hooks.on_train_end()
        return history

    def _epoch(self, epoch: int, interrupt: Callable[[], bool]) -> dict[str, float] | None:
        self.model.reset_metrics()
        x, y = self.train
        order, size = self.order(epoch), tf.constant(self.batch_size)
        step = 0
        results: dict[str, tf.Tensor] = {}
        while step < self.steps:
            if interrupt():
                return None
            started = time.perf_counter()
            last = min(self.steps, step + self._steps_per_call())
            results = self._train_steps(x, y, order, tf.constant(step), tf.constant(last), size)
            self._step_seconds = (time.perf_counter() - started) / (last - step)
            step = last
        logs = {name: float(value) for name, value in results.items()}
        if self.validation is not None:
            validated = self.evaluate(*self.validation)
            logs.update({f"val_{name}": value for name, value in validated.items()})
        return logs

    def _steps_per_call(self) -> int:
        if self._step_seconds is None:
            return min(self.steps, FIRST_CALL_STEPS)
        return max(1, min(self.steps, int(CALL_SECONDS / max(self._step_seconds, 1e-9))))


_kept: OrderedDict[str, Loop] = OrderedDict()


def shape_key(*parts: Any) -> str:
    """A key for what a traced loop depends on: the network, its inputs, constants built into it
    (normalization statistics, category vocabularies), loss, metrics, optimizer kind."""

    def exact(value: Any) -> Any:  # every value of an array, not numpy's shortened repr
        if isinstance(value, np.ndarray):
            return [value.dtype.str, value.shape, value.tobytes().hex()]
        return repr(value)

    return hashlib.sha256(json.dumps(parts, default=exact).encode()).hexdigest()


def kept(
    key: str,
    model: keras.Model,
    train: Tensors,
    validation: Tensors | None,
    batch_size: int,
    seed: int,
) -> tuple[Loop, bool]:
    """A traced loop for `model` (freshly built and compiled): a kept one of the same `key`,
    starting as `model` would, or a new one, traced now and kept. True when it was kept."""
    loop = _kept.pop(key, None)
    reused = loop is not None and loop.adopt(model)
    if loop is None or not reused:
        loop = Loop(model, train, validation, batch_size, seed)
        loop.trace()
    else:
        loop.use(train, validation, batch_size, seed)
    _kept[key] = loop
    while len(_kept) > LOOPS_KEPT:
        _kept.popitem(last=False)
    return loop, reused


def kept_loops() -> list[Loop]:
    """The loops this process keeps, oldest first."""
    return list(_kept.values())


def release() -> None:
    """Between jobs: kept loops keep their models, not the last job's rows."""
    for loop in _kept.values():
        loop.forget_data()


def forget() -> None:
    """Drop every kept loop."""
    _kept.clear()
