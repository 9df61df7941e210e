"""The training pipeline: prepare -> build/compile -> fit -> evaluate -> save, one model at a time.

`train` runs the steps in order for an attempt (`service.leases`): the fit writes each epoch to
the job's history (`workers.callbacks`), stops at an epoch boundary when asked to, and resumes
from a checkpoint when given a folder. Every kind of job trains through it: a single job and each
sweep trial (`workers.training`), each repeat of a repeated job (`workers.repeats`).
"""

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf
from sqlalchemy.orm import Session

from service import datasets, leases
from service.core import storage
from service.core.config import get_settings
from service.core.db import session_scope
from service.core.errors import DendriteError
from service.core.orm import Dataset, Model, new_id
from service.leases import Attempt
from service.ml import artifacts, builder
from service.ml import plan as plans
from service.ml.preprocessing import Prepared, prepare_arrays, prepare_frame
from service.schemas.jobs import JobCreate, Training
from workers import diagnostics
from workers import loop as loops
from workers.callbacks import Checkpoint, EpochRecorder, Stop, StopReason
from workers.loop import Loop
from workers.timings import Laps

log = logging.getLogger(__name__)

# Stop requests that end a fit mid-epoch; a hand-back waits for the epoch's end (its checkpoint).
INTERRUPTING = ("lost", "cancelled", "expired")


class Stopped(Exception):
    """Training stopped at an epoch boundary before the model was done (`reason`: why)."""

    def __init__(self, reason: StopReason) -> None:
        super().__init__(reason)
        self.reason: StopReason = reason


@dataclass(frozen=True)
class Data:
    """What `prepare` gives: the resolved plan and the preprocessed splits."""

    plan: plans.Plan
    prepared: Prepared


@dataclass(frozen=True)
class Trained:
    """A fitted, evaluated model, with what `save` needs to store it."""

    model: keras.Model
    data: Data
    history: keras.callbacks.History
    test_metrics: dict[str, float] | None
    laps: Laps


def train(
    attempt: Attempt,
    request: JobCreate,
    dataset: Dataset,
    stop: Stop,
    *,
    checkpoint_folder: Path | None = None,
    starting: Callable[[Session], None] | None = None,
) -> Trained:
    """Train one model for the attempt's job: seed, prepare, build and compile, fit, evaluate.

    With a `checkpoint_folder`, the fit resumes from the checkpoint there and keeps one; without,
    it starts from scratch. The job's history past where the fit starts is forgotten first, in one
    transaction with `starting`'s writes. Raises `Stopped` when the fit stopped early (the job
    was cancelled, ran out of time, is handed back or is held by another attempt now).
    """
    laps = Laps()
    training = request.training
    loops.seed(training.seed or 0)
    data = prepare(request, dataset)
    laps("load")
    model = build(request, data)
    laps("build")
    loop, _ = loop_for(model, request, data)  # a kept loop traces nothing
    laps("trace")
    callbacks: list[keras.callbacks.Callback] = []
    resume_after = 0
    if checkpoint_folder is not None:
        interval = get_settings().checkpoint_interval
        checkpoint = Checkpoint(attempt.job_id, checkpoint_folder, interval, stop)
        resume_after = checkpoint.saved_epoch()
        callbacks.append(checkpoint)
    with session_scope() as session:  # history past the checkpoint is trained again
        if not leases.rewind(session, attempt, resume_after):
            raise Stopped("lost")
        if starting is not None:
            starting(session)
    if resume_after:
        log.warning(
            "job %s resumes after epoch %d from its checkpoint", attempt.job_id, resume_after
        )
    recorder = EpochRecorder(attempt, stop, data.plan.epochs)
    callbacks.insert(0, recorder)
    if training.diagnostics:  # before the recorder, which writes its rows with the epoch's
        probe = diagnostics.Diagnostics(attempt, data.plan, data.prepared.train, training.seed or 0)
        callbacks.insert(0, probe)
        recorder.also_write.append(probe.write)
    history = fit(loop, request, data, callbacks, trained_epochs=resume_after, stop=stop)
    laps("fit")
    laps.add("first_epoch", recorder.first_epoch_seconds)  # part of fit
    laps.add("epoch_writes", recorder.write_seconds)  # part of fit
    if recorder.stopped_for is not None:
        raise Stopped(recorder.stopped_for)
    if stop.reason in INTERRUPTING:  # noticed mid-epoch, or during the last epoch
        raise Stopped(stop.reason)
    test_metrics = evaluate(loop, data)
    laps("evaluate")
    return Trained(loop.model, data, history, test_metrics, laps)


def prepare(request: JobCreate, dataset: Dataset) -> Data:
    """Load the dataset and split and preprocess it as the request says (seeded)."""
    plan = plans.resolve(request, dataset)
    training = request.training
    seed = training.seed or 0
    if plan.data == "array":
        prepared = prepare_arrays(
            plan,
            datasets.load_arrays(dataset),
            normalize=request.preprocessing.normalize,
            seed=seed,
            validation_split=training.validation_split,
            test_split=training.test_split,
        )
    else:
        prepared = prepare_frame(
            plan,
            datasets.load_frame(dataset),
            normalize=request.preprocessing.normalize,
            missing=request.preprocessing.missing,
            seed=seed,
            validation_split=training.validation_split,
            test_split=training.test_split,
        )
    return Data(plan, prepared)


def build(request: JobCreate, data: Data) -> keras.Model:
    """The request's network, built for the plan (preprocessing inside) and compiled."""
    try:
        model = builder.build(request.network, data.plan, data.prepared.normalization)
    except ValueError as error:
        raise DendriteError(f"the network cannot be built: {error}") from None
    builder.compile_model(model, data.plan, request.training.optimizer)
    return model


def loop_for(model: keras.Model, request: JobCreate, data: Data) -> tuple[Loop, bool]:
    """A traced training loop for `model` (built and compiled by `build`): one this process kept
    from an earlier job of the same shape, starting as `model` would, or a new one, traced now.
    Train `loop.model`, which is `model` only when the loop is new. True when it was kept."""
    training, plan, prepared = request.training, data.plan, data.prepared
    normalization = prepared.normalization
    key = loops.shape_key(
        request.network.model_dump(mode="json"),
        {**dataclasses.asdict(plan), "epochs": None, "memory": None},
        None if normalization is None else (normalization.mean, normalization.variance),
        training.optimizer.model_dump(mode="json", exclude={"learning_rate"}),
        tf.constant(0.0).device,  # the device this job trains on (its tf.device scope)
    )
    validation = prepared.validation
    return loops.kept(
        key,
        model,
        loops.tensors(plan, prepared.train),
        loops.tensors(plan, validation) if validation else None,
        training.batch_size,
        training.seed or 0,
    )


def fit(
    loop: Loop,
    request: JobCreate,
    data: Data,
    callbacks: list[keras.callbacks.Callback],
    *,
    trained_epochs: int = 0,
    stop: Stop | None = None,
) -> keras.callbacks.History:
    """Fit `loop.model` on the train split, validating on the validation split if there is one,
    with `callbacks` and the request's early stopping; after `trained_epochs` when resuming. A
    `stop` that is cancelled, lost or out of time ends the fit at the next call into TensorFlow,
    mid-epoch included."""
    return loop.fit(
        data.plan.epochs,
        callbacks + _early_stopping(request.training),
        initial_epoch=trained_epochs,
        interrupt=(lambda: stop.reason in INTERRUPTING) if stop is not None else (lambda: False),
    )


def evaluate(loop: Loop, data: Data) -> dict[str, float] | None:
    """The loss and metrics of `loop.model` on the test split; None without one."""
    test = data.prepared.test
    if test is None:
        return None
    return loop.evaluate(*loops.tensors(data.plan, test))


def save(trained: Trained) -> Model:
    """Save the trained model to the store; its row, without the job and owner (the caller's)."""
    model, plan, prepared = trained.model, trained.data.plan, trained.data.prepared
    model_id = new_id()
    key = f"models/{model_id}.keras"
    with storage.local_target(key) as path:  # uploaded to a remote store when saved
        size = artifacts.save(model, path)
    trained.laps("save")
    features: list[dict[str, Any]] = [
        {
            "name": f.name,
            "input": f.input,
            "kind": f.kind,
            "categories": f.categories,
            "fill": prepared.fills.get(f.name),
        }
        for f in plan.features
    ]
    evaluation = diagnostics.held_out(model, plan, prepared)
    trained.laps("evaluate")
    return Model(
        id=model_id,
        task=plan.task,
        input_schema={"kind": plan.data, "features": features, "shape": plan.sample_shape},
        outputs={"targets": plan.targets, "labels": plan.labels},
        test_metrics=trained.test_metrics,
        evaluation=evaluation,
        parameters=int(model.count_params()),
        size_bytes=size,
        storage_key=key,
        trained_with={
            "keras": keras.__version__,
            "tensorflow": tf.__version__,
            "device": tf.constant(0.0).device.rsplit("device:", 1)[-1],
        },
    )


def _early_stopping(training: Training) -> list[keras.callbacks.Callback]:
    """Keras' EarlyStopping as the request sets it, if it does."""
    stopping = training.early_stopping
    if stopping is None:
        return []
    return [
        keras.callbacks.EarlyStopping(
            monitor=stopping.monitor,
            patience=stopping.patience,
            min_delta=stopping.min_delta,
            restore_best_weights=stopping.restore_best_weights,
        )
    ]
