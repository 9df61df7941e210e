"""data -> preprocessing -> model -> fit (callbacks) -> evaluate -> save, for one job id."""

import logging
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from service import datasets, leases
from service.core import logs, storage
from service.core.config import get_settings
from service.core.db import session_scope
from service.core.errors import DendriteError
from service.core.orm import Dataset, Job, JobStatus, Model, new_id
from service.leases import Attempt
from service.ml import artifacts, builder
from service.ml import plan as plans
from service.ml.preprocessing import Prepared, Split, prepare_arrays, prepare_frame
from service.schemas import JobCreate, Training
from workers import diagnostics, holds, memory, shutdown
from workers.callbacks import Checkpoint, EpochRecorder, Heartbeat, Stop, StopReason
from workers.timings import Laps

log = logging.getLogger(__name__)

KERAS_ITERATORS_PER_EPOCH = 2  # see _batches


class _Stopped(Exception):
    def __init__(self, reason: StopReason) -> None:
        super().__init__(reason)
        self.reason: StopReason = reason


def run(job_id: str, worker: str) -> None:
    """Run, for the message sent for `job_id`, the fairest queued job of its queue (not always
    that job: `service.core.queue.fairest`) until it ends or is handed back. When no job is queued
    (a duplicate or late delivery), nothing runs."""
    with shutdown.running_job():  # from here, SIGTERM hands the job back
        with session_scope() as session:  # its own transaction: claims take turns
            attempt = leases.claim_next(session, job_id, worker)
        if attempt is None:
            log.warning("job %s: no queued job left for its message; not running any", job_id)
            return
        if attempt.job_id != job_id:
            log.info("job %s: its message runs job %s (fair share)", job_id, attempt.job_id)
        with logs.job_context(attempt.job_id):  # the claimed job drives everything from here
            with session_scope() as session:
                job = session.get_one(Job, attempt.job_id)
                device, job.device_used = _pick_device(job.device)
                request = JobCreate.model_validate(job.request)
                dataset = job.dataset
                session.expunge(dataset)
                log.info(
                    "job %s: attempt %d, %s, %s",
                    attempt.job_id,
                    attempt.number,
                    worker,
                    job.device_used,
                )
            _attempt(attempt, device, request, dataset)


def _attempt(attempt: Attempt, device: str | None, request: JobCreate, dataset: Dataset) -> None:
    # Should this process die, its worker requeues the job at once (workers.holds); should it
    # outgrow the memory ceiling, the job fails saying so (workers.memory).
    with holds.holding(attempt.job_id), memory.ceiling(attempt):
        _run_attempt(attempt, device, request, dataset)


def _run_attempt(
    attempt: Attempt, device: str | None, request: JobCreate, dataset: Dataset
) -> None:
    stop = Stop(attempt.deadline)
    heartbeat = Heartbeat(attempt, stop, get_settings().heartbeat_interval)
    heartbeat.start()
    try:
        stop.check_deadline()  # a job that comes back after its time ran out does not start again
        if stop.expired.is_set():
            raise _Stopped("expired")
        if device is None:
            raise DendriteError(
                f"the job asks for a GPU, but worker {attempt.worker} has none; "
                "use device 'auto' or 'cpu'"
            )
        # The checkpoint lives in the store; a remote store's is copied to a local folder first.
        with tf.device(device), storage.checkpoint_folder(attempt.job_id) as folder:
            _train(attempt, request, dataset, stop, folder)
    except _Stopped as stopped:
        _stopped(attempt, stopped.reason)
    except DendriteError as error:
        _end(attempt, JobStatus.failed, error.detail)
    except Exception as error:
        log.exception("job %s failed", attempt.job_id)
        _end(attempt, JobStatus.failed, f"training failed: {type(error).__name__}: {error}")
    finally:
        heartbeat.stop()


def _stopped(attempt: Attempt, reason: StopReason) -> None:
    if reason == "cancelled":
        _end(attempt, JobStatus.cancelled, "cancelled while running")
    elif reason == "expired":
        _end(attempt, JobStatus.failed, leases.time_limit_error())
    elif reason == "hand_back":
        with session_scope() as session:
            handed = leases.hand_back(session, attempt)
        if handed:
            log.warning(
                "job %s handed back at an epoch boundary; it resumes elsewhere", attempt.job_id
            )
    else:
        log.warning(
            "job %s went back to the queue while this worker ran it (its heartbeat was late); "
            "dropping this attempt",
            attempt.job_id,
        )


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
    plan: plans.Plan,
    split: Split,
    batch_size: int,
    shuffle_seed: int | None = None,
    trained_epochs: int = 0,
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
        batches = batches.shuffle(len(split), seed=shuffle_seed)
        # Each new iterator draws the next order, and Keras 3 makes two per epoch. A resumed job
        # draws those of the epochs it already trained, so it sees what an uninterrupted run would
        # (tests/workers/test_training.py checks that this holds).
        for _ in range(KERAS_ITERATORS_PER_EPOCH * trained_epochs):
            iter(batches)
        batches = batches.batch(batch_size)
    return batches.prefetch(tf.data.AUTOTUNE)


def _train(
    attempt: Attempt, request: JobCreate, dataset: Dataset, stop: Stop, folder: Path
) -> None:
    if (
        request.repeats > 1
    ):  # a part of a repeated job (service/experiments/repeats.py): a model per repeat
        from workers import repeats

        repeats.train(attempt, request, dataset, stop)
        return
    training = request.training
    laps = Laps()
    keras.utils.set_random_seed(training.seed or 0)
    plan, prepared = _prepare(request, dataset)
    laps("load")
    try:
        model = builder.build(request.network, plan, prepared.normalization)
    except ValueError as error:
        raise DendriteError(f"the network cannot be built: {error}") from None
    # Several batches per call into TensorFlow: fewer Python round trips, same arithmetic.
    steps = max(1, -(-len(prepared.train) // training.batch_size))
    builder.compile_model(model, plan, training.optimizer, steps_per_execution=min(steps, 32))
    laps("build")
    checkpoint = Checkpoint(attempt.job_id, folder, get_settings().checkpoint_interval, stop)
    resume_after = checkpoint.saved_epoch()
    with session_scope() as session:  # history past the checkpoint is trained again
        if not leases.rewind(session, attempt, resume_after):
            raise _Stopped("lost")
    if resume_after:
        log.warning(
            "job %s resumes after epoch %d from its checkpoint", attempt.job_id, resume_after
        )
    recorder = EpochRecorder(attempt, stop, plan.epochs)
    callbacks: list[keras.callbacks.Callback] = [recorder, checkpoint]
    if training.diagnostics:  # before the recorder, which writes its rows with the epoch's
        probe = diagnostics.Diagnostics(attempt, plan, prepared.train, training.seed or 0)
        callbacks.insert(0, probe)
        recorder.also_write.append(probe.write)
    callbacks += early_stopping(training)
    validation = prepared.validation
    batch_size = training.batch_size
    model.fit(
        _batches(plan, prepared.train, batch_size, training.seed or 0, trained_epochs=resume_after),
        validation_data=_batches(plan, validation, batch_size) if validation else None,
        epochs=plan.epochs,
        shuffle=False,  # the pipeline reshuffles each epoch itself
        verbose=0,
        callbacks=callbacks,
    )
    laps("fit")
    laps.add("epoch_writes", recorder.write_seconds)  # part of fit
    if recorder.stopped_for is not None:
        raise _Stopped(recorder.stopped_for)
    if stop.reason in ("lost", "cancelled"):  # noticed during the last epoch
        raise _Stopped(stop.reason)
    test_metrics = None
    if prepared.test is not None:
        evaluated = model.evaluate(
            _batches(plan, prepared.test, batch_size), verbose=0, return_dict=True
        )
        test_metrics = {name: float(value) for name, value in evaluated.items()}
    laps("evaluate")
    _save(attempt, model, plan, prepared, test_metrics, laps)


def _save(
    attempt: Attempt,
    model: keras.Model,
    plan: plans.Plan,
    prepared: Prepared,
    test_metrics: dict[str, float] | None,
    laps: Laps | None = None,
) -> None:
    job_id = attempt.job_id
    row = stored_model(model, plan, prepared, test_metrics, laps)
    with session_scope() as session:
        job = session.get_one(Job, job_id)
        if laps is not None:
            job.timings = laps.seconds
        row.job_id, row.owner = job_id, job.owner
        session.add(row)
        if leases.end(session, attempt, JobStatus.succeeded):
            return
        session.rollback()
    storage.delete(row.storage_key)
    log.warning("job %s: another attempt holds it now; this attempt's model is dropped", job_id)


def stored_model(
    model: keras.Model,
    plan: plans.Plan,
    prepared: Prepared,
    test_metrics: dict[str, float] | None,
    laps: Laps | None = None,
) -> Model:
    """Save the trained model to the store; its row, without the job and owner (the caller's)."""
    model_id = new_id()
    key = f"models/{model_id}.keras"
    with storage.local_target(key) as path:  # uploaded to a remote store when saved
        size = artifacts.save(model, path)
    if laps is not None:
        laps("save")
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
    if laps is not None:
        laps("evaluate")
    return Model(
        id=model_id,
        task=plan.task,
        input_schema={"kind": plan.data, "features": features, "shape": plan.sample_shape},
        outputs={"targets": plan.targets, "labels": plan.labels},
        test_metrics=test_metrics,
        evaluation=evaluation,
        parameters=int(model.count_params()),
        size_bytes=size,
        storage_key=key,
    )


def early_stopping(training: Training) -> list[keras.callbacks.Callback]:
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


def _end(attempt: Attempt, status: JobStatus, error: str) -> None:
    with session_scope() as session:
        ended = leases.end(session, attempt, status, error)
    if not ended:
        log.warning("job %s: another attempt holds it now; dropping '%s'", attempt.job_id, error)
