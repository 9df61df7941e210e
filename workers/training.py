"""data -> preprocessing -> model -> fit (callbacks) -> evaluate -> save, for one job id."""

import logging
import threading
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from service import datasets, storage
from service.config import get_settings
from service.db import session_scope
from service.errors import DendriteError
from service.ml import artifacts, builder
from service.ml import plan as plans
from service.ml.preprocessing import Prepared, Split, prepare_arrays, prepare_frame
from service.orm import Dataset, Job, JobStatus, Model, new_id, utcnow
from service.schemas import JobCreate
from workers.callbacks import EpochRecorder, Heartbeat

log = logging.getLogger(__name__)


class _Cancelled(Exception):
    pass


def run(job_id: str, worker: str) -> None:
    """Run one queued job to its end state. A job that is not queued is left alone."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None or job.status != JobStatus.queued:
            log.warning("job %s is %s; not running it", job_id, job.status if job else "missing")
            return
        device, device_used = _pick_device(job.device)
        job.status = JobStatus.running
        job.started_at = job.heartbeat_at = utcnow()
        job.worker, job.device_used = worker, device_used
        request = JobCreate.model_validate(job.request)
        dataset = job.dataset
        session.expunge(dataset)
    cancel = threading.Event()
    heartbeat = Heartbeat(job_id, cancel, get_settings().heartbeat_interval)
    heartbeat.start()
    try:
        if device is None:
            raise DendriteError(
                f"the job asks for a GPU, but worker {worker} has none; use device 'auto' or 'cpu'"
            )
        with tf.device(device):
            _train(job_id, request, dataset, cancel)
    except _Cancelled:
        _finish(job_id, JobStatus.cancelled, "cancelled while running")
    except DendriteError as error:
        _finish(job_id, JobStatus.failed, error.detail)
    except Exception as error:
        log.exception("job %s failed", job_id)
        _finish(job_id, JobStatus.failed, f"training failed: {type(error).__name__}: {error}")
    finally:
        heartbeat.stop()


def _pick_device(requested: str) -> tuple[str | None, str]:
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)  # jobs can share a card
    if requested == "cpu" or not gpus:
        return (None if requested == "gpu" else "/CPU:0"), "cpu"
    return "/GPU:0", f"gpu ({gpus[0].name})"


def _prepare(request: JobCreate, dataset: Dataset) -> tuple[plans.Plan, Prepared]:
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
    return plan, prepared


def _targets(plan: plans.Plan, split: Split) -> np.ndarray:
    if plan.task == "classification":
        return np.asarray(keras.utils.to_categorical(split.y, num_classes=plan.output_units))
    return split.y


def _batches(
    plan: plans.Plan, split: Split, batch_size: int, shuffle_seed: int | None = None
) -> tf.data.Dataset:
    """A tf.data pipeline: reshuffled every epoch (training) or cached (evaluation).

    Fed numpy arrays, Keras rebuilds its input pipeline every epoch; on small tables that
    per-epoch overhead, not arithmetic, is most of the training time.
    """
    batches = tf.data.Dataset.from_tensor_slices(
        (builder.model_inputs(split.x), _targets(plan, split))
    )
    if shuffle_seed is None:
        batches = batches.batch(batch_size).cache()
    else:
        batches = batches.shuffle(len(split), seed=shuffle_seed).batch(batch_size)
    return batches.prefetch(tf.data.AUTOTUNE)


def _train(job_id: str, request: JobCreate, dataset: Dataset, cancel: threading.Event) -> None:
    training = request.training
    keras.utils.set_random_seed(training.seed or 0)
    plan, prepared = _prepare(request, dataset)
    try:
        model = builder.build(request.network, plan, prepared.normalization)
    except ValueError as error:
        raise DendriteError(f"the network cannot be built: {error}") from None
    # Several batches per call into TensorFlow: fewer Python round trips, same arithmetic.
    steps = max(1, -(-len(prepared.train) // training.batch_size))
    builder.compile_model(model, plan, training.optimizer, steps_per_execution=min(steps, 32))
    callbacks: list[keras.callbacks.Callback] = [EpochRecorder(job_id, cancel)]
    if training.early_stopping is not None:
        stopping = training.early_stopping
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=stopping.monitor,
                patience=stopping.patience,
                min_delta=stopping.min_delta,
                restore_best_weights=stopping.restore_best_weights,
            )
        )
    validation = prepared.validation
    batch_size = training.batch_size
    model.fit(
        _batches(plan, prepared.train, batch_size, shuffle_seed=training.seed or 0),
        validation_data=_batches(plan, validation, batch_size) if validation else None,
        epochs=plan.epochs,
        shuffle=False,  # the pipeline reshuffles each epoch itself
        verbose=0,
        callbacks=callbacks,
    )
    if cancel.is_set():
        raise _Cancelled
    test_metrics = None
    if prepared.test is not None:
        evaluated = model.evaluate(
            _batches(plan, prepared.test, batch_size), verbose=0, return_dict=True
        )
        test_metrics = {name: float(value) for name, value in evaluated.items()}
    _save(job_id, model, plan, prepared, test_metrics)


def _save(
    job_id: str,
    model: keras.Model,
    plan: plans.Plan,
    prepared: Prepared,
    test_metrics: dict[str, float] | None,
) -> None:
    model_id = new_id()
    key = f"models/{model_id}.keras"
    size = artifacts.save(model, storage.path(key))
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
    input_schema = {"kind": plan.data, "features": features, "shape": plan.sample_shape}
    outputs = {"targets": plan.targets, "labels": plan.labels}
    with session_scope() as session:
        session.add(
            Model(
                id=model_id,
                job_id=job_id,
                task=plan.task,
                input_schema=input_schema,
                outputs=outputs,
                test_metrics=test_metrics,
                parameters=int(model.count_params()),
                size_bytes=size,
                storage_key=key,
            )
        )
        job = session.get(Job, job_id)
        assert job is not None
        job.status = JobStatus.succeeded
        job.finished_at = utcnow()


def _finish(job_id: str, status: JobStatus, error: str) -> None:
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is not None:
            job.status, job.error, job.finished_at = status, error, utcnow()
