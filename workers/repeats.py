"""One part of a repeated job (`service.experiments.repeats`): its repeats, one after another,
each a fresh model on its own split (the repeat's seed), evaluated on its test rows and recorded.

A part that is handed back or requeued skips the repeats it already recorded; the repeat it was
training starts again from scratch (repeats are short, so they keep no checkpoints). The part's
history and progress show the repeat in progress.
"""

import logging
import time
from typing import Any

import keras
from sqlalchemy import select, update

from service import leases
from service.core import storage
from service.core.db import session_scope
from service.core.errors import DendriteError
from service.core.orm import Dataset, Job, JobRepeat, JobStatus, utcnow
from service.leases import Attempt
from service.ml import builder
from service.schemas import JobCreate
from workers import training
from workers.callbacks import EpochRecorder, Stop

log = logging.getLogger(__name__)


def train(attempt: Attempt, request: JobCreate, dataset: Dataset, stop: Stop) -> None:
    """Train the part's remaining repeats, then end the part."""
    with session_scope() as session:
        parent_id = session.scalar(select(Job.parent_id).where(Job.id == attempt.job_id))
        todo = session.execute(
            select(JobRepeat.id, JobRepeat.index, JobRepeat.seed)
            .where(JobRepeat.run_job_id == attempt.job_id, JobRepeat.status != JobStatus.succeeded)
            .order_by(JobRepeat.index)
        ).all()
    if parent_id is None:
        raise DendriteError(f"job {attempt.job_id} has repeats but is not a part of a repeated job")
    for repeat in todo:
        if stop.reason is not None:
            raise training._Stopped(stop.reason)
        _repeat(attempt, parent_id, repeat, request, dataset, stop)
    with session_scope() as session:
        if not leases.end(session, attempt, JobStatus.succeeded):
            log.warning("part %s: another attempt holds it now", attempt.job_id)


def _repeat(
    attempt: Attempt, parent_id: str, repeat: Any, request: JobCreate, dataset: Dataset, stop: Stop
) -> None:
    started = time.perf_counter()
    seeded = request.model_copy(deep=True)
    seeded.training.seed = repeat.seed
    keras.backend.clear_session()  # the previous repeat's graph and layer names go
    keras.utils.set_random_seed(repeat.seed)
    plan, prepared = training._prepare(seeded, dataset)
    try:
        model = builder.build(seeded.network, plan, prepared.normalization)
    except ValueError as error:
        raise DendriteError(f"the network cannot be built: {error}") from None
    settings = seeded.training
    steps = max(1, -(-len(prepared.train) // settings.batch_size))
    builder.compile_model(model, plan, settings.optimizer, steps_per_execution=min(steps, 32))
    with session_scope() as session:  # the part's history shows the repeat in progress
        if not leases.rewind(session, attempt, 0):
            raise training._Stopped("lost")
        session.execute(
            update(JobRepeat).where(JobRepeat.id == repeat.id).values(status=JobStatus.running)
        )
    recorder = EpochRecorder(attempt, stop, plan.epochs)
    callbacks: list[keras.callbacks.Callback] = [recorder]
    callbacks += training.early_stopping(settings)
    batch_size = settings.batch_size
    validation = prepared.validation
    fitted = model.fit(
        training._batches(plan, prepared.train, batch_size, repeat.seed),
        validation_data=training._batches(plan, validation, batch_size) if validation else None,
        epochs=plan.epochs,
        shuffle=False,
        verbose=0,
        callbacks=callbacks,
    )
    if recorder.stopped_for is not None:
        raise training._Stopped(recorder.stopped_for)
    if stop.reason in ("lost", "cancelled"):
        raise training._Stopped(stop.reason)
    assert (
        prepared.test is not None
    )  # service.experiments.repeats.check: a repeated job has a test set
    evaluated = model.evaluate(
        training._batches(plan, prepared.test, batch_size), verbose=0, return_dict=True
    )
    test_metrics = {name: float(value) for name, value in evaluated.items()}
    last = {name: float(values[-1]) for name, values in fitted.history.items() if values}
    result = {
        "status": JobStatus.succeeded,
        "epochs": len(fitted.epoch),
        "metrics": last,
        "test_metrics": test_metrics,
        "seconds": time.perf_counter() - started,
        "finished_at": utcnow(),
    }
    # Repeat 0's model is the job's: it serves the job's predictions.
    saved = None
    if repeat.index == 0:
        saved = training.stored_model(model, plan, prepared, test_metrics)
    with session_scope() as session:
        if not leases.touch(session, attempt):
            session.rollback()
            if saved is not None:
                storage.delete(saved.storage_key)
            raise training._Stopped("lost")
        session.execute(update(JobRepeat).where(JobRepeat.id == repeat.id).values(**result))
        if saved is not None:
            saved.job_id = parent_id
            saved.owner = session.get_one(Job, parent_id).owner
            session.add(saved)
