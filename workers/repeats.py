"""One part of a repeated job (`service.experiments.repeats`): its repeats, one after another,
each a fresh model on its own split (the repeat's seed) through the pipeline (`workers.pipeline`),
evaluated on its test rows and recorded.

A part that is handed back or requeued skips the repeats it already recorded; the repeat it was
training starts again from scratch (repeats are short, so they keep no checkpoints). The part's
history and progress show the repeat in progress.
"""

import logging
import time
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service import leases
from service.core import storage
from service.core.db import session_scope
from service.core.errors import DendriteError
from service.core.orm import Dataset, Job, JobRepeat, JobStatus, utcnow
from service.leases import Attempt
from service.schemas.jobs import JobCreate
from workers import attempts, pipeline
from workers.callbacks import Stop

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
            raise pipeline.Stopped(stop.reason)
        _repeat(attempt, parent_id, repeat, request, dataset, stop)
    with session_scope() as session:
        if not attempts.end(session, attempt, JobStatus.succeeded):
            log.warning("part %s: another attempt holds it now", attempt.job_id)


def _repeat(
    attempt: Attempt, parent_id: str, repeat: Any, request: JobCreate, dataset: Dataset, stop: Stop
) -> None:
    started = time.perf_counter()
    seeded = request.model_copy(deep=True)
    seeded.training.seed = repeat.seed
    seeded.training.diagnostics = False  # a repeat keeps its metrics only

    def running(session: Session) -> None:  # the part's history shows the repeat in progress
        session.execute(
            update(JobRepeat).where(JobRepeat.id == repeat.id).values(status=JobStatus.running)
        )

    trained = pipeline.train(attempt, seeded, dataset, stop, starting=running)
    # service.experiments.repeats.check: a repeated job has a test set
    assert trained.test_metrics is not None
    history = trained.history.history
    result = {
        "status": JobStatus.succeeded,
        "epochs": len(trained.history.epoch),
        "metrics": {name: float(values[-1]) for name, values in history.items() if values},
        "test_metrics": trained.test_metrics,
        "seconds": time.perf_counter() - started,
        "finished_at": utcnow(),
    }
    # Repeat 0's model is the job's: it serves the job's predictions.
    saved = pipeline.save(trained) if repeat.index == 0 else None
    with session_scope() as session:
        if not leases.touch(session, attempt):
            session.rollback()
            if saved is not None:
                storage.delete(saved.storage_key)
            raise pipeline.Stopped("lost")
        session.execute(update(JobRepeat).where(JobRepeat.id == repeat.id).values(**result))
        if saved is not None:
            saved.job_id = parent_id
            saved.owner = session.get_one(Job, parent_id).owner
            session.add(saved)
