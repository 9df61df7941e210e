"""One job's attempt in a worker process: claim -> the pipeline (`workers.pipeline`) -> the outcome.

Around the training: the attempt's hold (`workers.holds`), its memory ceiling (`workers.memory`),
its heartbeat and stop reasons (`workers.callbacks`), the device, and the end it records, or the
hand-back. A part of a repeated job trains its repeats instead (`workers.repeats`).
"""

import contextlib
import gc
import logging
from collections.abc import Callable

import tensorflow as tf
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from service import leases, registry
from service.core import logs, storage
from service.core.config import get_settings
from service.core.db import session_scope
from service.core.errors import DendriteError
from service.core.orm import Dataset, Job, JobKind, JobStatus
from service.keys import Principal
from service.leases import Attempt
from service.schemas.jobs import JobCreate, Register
from workers import attempts, holds, memory, pipeline, repeats, scoring, shutdown, timings
from workers import loop as loops
from workers.callbacks import Heartbeat, Stop, StopReason

log = logging.getLogger(__name__)


def run(job_id: str, worker: str) -> None:
    """Run, for the message sent for `job_id`, the fairest queued job of its queue (not always
    that job: `service.core.queue.fairest`) until it ends or is handed back. When no job is queued
    (a duplicate or late delivery), nothing runs."""
    with shutdown.running_job():  # from here, SIGTERM hands the job back
        with session_scope() as session:  # its own transaction: claims take turns
            attempt = attempts.claim(session, job_id, worker)
        if attempt is None:
            log.warning("job %s: no queued job left for its message; not running any", job_id)
            return
        if attempt.job_id != job_id:
            log.info("job %s: its message runs job %s (fair share)", job_id, attempt.job_id)
        with logs.job_context(attempt.job_id):  # the claimed job drives everything from here
            with session_scope() as session:
                job = session.get_one(Job, attempt.job_id)
                device, job.device_used = _pick_device(job.device)
                kind = job.kind
                log.info(
                    "job %s: attempt %d, %s, %s, %s",
                    attempt.job_id,
                    attempt.number,
                    kind,
                    worker,
                    job.device_used,
                )
                if kind == JobKind.training:
                    request = JobCreate.model_validate(job.request)
                    dataset = job.dataset
                    session.expunge(dataset)
            if kind == JobKind.batch_prediction:  # scores a dataset with a model
                _attempt_with(attempt, device, lambda stop: scoring.run(attempt, stop))
                return
            _attempt(attempt, device, request, dataset)


def _attempt(attempt: Attempt, device: str | None, request: JobCreate, dataset: Dataset) -> None:
    def work(stop: Stop) -> None:
        if request.repeats > 1:  # a part of a repeated job: a model per repeat
            repeats.train(attempt, request, dataset, stop)
        else:
            _train(attempt, request, dataset, stop)

    _attempt_with(attempt, device, work)


def _attempt_with(attempt: Attempt, device: str | None, work: Callable[[Stop], None]) -> None:
    # Should this process die, its worker requeues the job at once (workers.holds); should it
    # outgrow the memory ceiling, the job fails saying so (workers.memory).
    with holds.holding(attempt.job_id), memory.ceiling(attempt):
        _run_attempt(attempt, device, work)


def _run_attempt(attempt: Attempt, device: str | None, work: Callable[[Stop], None]) -> None:
    stop = Stop(attempt.deadline)
    heartbeat = Heartbeat(attempt, stop, get_settings().heartbeat_interval)
    heartbeat.start()
    try:
        stop.check_deadline()  # a job that comes back after its time ran out does not start again
        if stop.expired.is_set():
            raise pipeline.Stopped("expired")
        if device is None:
            raise DendriteError(
                f"the job asks for a GPU, but worker {attempt.worker} has none; "
                "use device 'auto' or 'cpu'"
            )
        with tf.device(device):
            work(stop)
    except pipeline.Stopped as stopped:
        _stopped(attempt, stopped.reason)
    except DendriteError as error:
        _end(attempt, JobStatus.failed, error.detail)
    except Exception as error:
        log.exception("job %s failed", attempt.job_id)
        _end(attempt, JobStatus.failed, f"training failed: {type(error).__name__}: {error}")
    finally:
        heartbeat.stop()


def _train(attempt: Attempt, request: JobCreate, dataset: Dataset, stop: Stop) -> None:
    """A single job (or a sweep's trial): one model, resumable from its checkpoint, saved."""
    # The checkpoint lives in the store; a remote store's is copied to a local folder first.
    with storage.checkpoint_folder(attempt.job_id) as folder:
        trained = pipeline.train(attempt, request, dataset, stop, checkpoint_folder=folder)
        row = pipeline.save(trained)
        with session_scope() as session:
            job = session.get_one(Job, attempt.job_id)
            job.timings = trained.laps.seconds
            row.job_id, row.owner = attempt.job_id, job.owner
            session.add(row)
            if attempts.end(session, attempt, JobStatus.succeeded):
                if request.register_as is not None:
                    _register(session, job.owner, row.id, request.register_as)
                return
            session.rollback()
    storage.delete(row.storage_key)
    log.warning(
        "job %s: another attempt holds it now; this attempt's model is dropped", attempt.job_id
    )


def _register(session: Session, owner: str, model_id: str, register: Register) -> None:
    """The job's `register`: its model as the next version (and the alias moved), in the
    transaction that ends the job; if that fails, the job still succeeds, and says so in the log."""
    principal = Principal(owner=owner)
    try:
        with session.begin_nested():
            registry.ensure(session, principal, register.name)
            version = registry.add_version(session, principal, register.name, model_id)
            if register.alias is not None:
                registry.set_alias(
                    session, principal, register.name, register.alias, version.version
                )
    except (DendriteError, SQLAlchemyError) as error:
        log.warning("the model %s was not registered as '%s': %s", model_id, register.name, error)


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


def release() -> None:
    """Forget the last job's models and rows: the process is reused for the next job
    (`DENDRITE_WORKER_JOBS_PER_PROCESS`), which must train as it would in a fresh one.

    Not `keras.backend.clear_session()`: it also empties TensorFlow's cache of instantiated
    functions, and the next job's kept loop (`workers.loop`) would pay ~0.15 s to instantiate
    them again. What it resets that could matter is reset anyway: the next job seeds every
    generator (`loop.seed`), and every layer dendrite builds is named, so no auto-generated name
    depends on the jobs before. Old models are cyclic garbage: collected here (milliseconds, with
    the import frozen out of the collector's sight)."""
    loops.release()  # traced loops are kept for the next job of their shape, its rows are not
    gc.collect()
    timings.import_seconds = 0.0  # paid once, by the process' first job


def _pick_device(requested: str) -> tuple[str | None, str]:
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        with contextlib.suppress(RuntimeError):  # set by an earlier job of this process
            tf.config.experimental.set_memory_growth(gpu, True)  # jobs can share a card
    if requested == "cpu" or not gpus:
        return (None if requested == "gpu" else "/CPU:0"), "cpu"
    return "/GPU:0", f"gpu ({gpus[0].name})"


def _end(attempt: Attempt, status: JobStatus, error: str) -> None:
    with session_scope() as session:
        ended = attempts.end(session, attempt, status, error)
    if not ended:
        log.warning("job %s: another attempt holds it now; dropping '%s'", attempt.job_id, error)
