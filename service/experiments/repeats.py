"""Repeated experiments: one job request, `repeats` fresh models, each on its own random split.

A repeated job's own row is never run. At submit it fans out into parts: at most
`DENDRITE_REPEAT_TASKS` ordinary jobs (`parent_id` = the job), each training its share of the
repeats one after another in one worker process, so the repeats run in parallel across workers
without paying a process start (TensorFlow import included) each. A part is a job like any other
for claims, heartbeats, cancellation (`service.leases`) and recovery (`service.recovery`); a
requeued part skips the repeats it already finished. The job follows its parts (`sync`): running
once one runs, and succeeded, failed or cancelled once all have ended. The lease does not know
about repeats: whoever changes a part's status calls `settle` (the worker as it claims and ends a
part, recovery as it ends one, `service.jobs.cancel`), and `settle_stuck` catches any it missed.

Repeat i trains with its own seed (`seed_for`): repeat 0 with the job's seed (it is exactly the
job without repeats), the others with seeds derived from it. Repeat 0's model is the job's model
and serves its predictions; the other repeats keep their metrics only.
"""

import hashlib
import statistics
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.core import queue, storage
from service.core.config import get_settings
from service.core.errors import Conflict, InvalidInput, NotFound
from service.core.orm import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    Dataset,
    Job,
    JobRepeat,
    JobStatus,
    utcnow,
)
from service.schemas.jobs import JobCreate, Progress
from service.schemas.repeats import MetricAggregate, RepeatRead, RepeatsRead, RepeatsSummary


def seed_for(seed: int, index: int) -> int:
    """Repeat `index`'s seed: the job's own for repeat 0, else one derived from (seed, index)."""
    if index == 0:
        return seed
    digest = hashlib.sha256(f"dendrite-repeat:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 2**31


def has_test_set(request: JobCreate, dataset: Dataset) -> bool:
    """A test split, or an NPZ file's own x_test/y_test (every repeat then evaluates on it)."""
    own = dataset.format == "npz" and any(c.get("name") == "x_test" for c in dataset.columns)
    return request.training.test_split > 0 or own


def check(request: JobCreate, dataset: Dataset) -> None:
    """A repeated job needs a test set to report, and stays within the repeats limit."""
    if request.repeats == 1:
        return
    limit = get_settings().max_repeats
    if request.repeats > limit:
        raise InvalidInput(
            f"repeats is {request.repeats}; at most {limit} (DENDRITE_MAX_REPEATS)",
            field="/repeats",
        )
    if not has_test_set(request, dataset):
        raise InvalidInput(
            "repeats report each repeat's test metrics, so they need a test split: set "
            "training.test_split (the course's assignment holds out 0.3)",
            field="/training/test_split",
        )


def fan_out(session: Session, job: Job) -> None:
    """Create the job's parts and its repeats, and queue the parts (after the commit)."""
    seed = int(job.request["training"]["seed"])
    count = min(job.repeats, get_settings().repeat_tasks)
    size, extra = divmod(job.repeats, count)
    index = 0
    for number in range(count):
        part = Job(
            owner=job.owner,
            dataset_id=job.dataset_id,
            task=job.task,
            request=job.request,
            device=job.device,
            epochs=job.epochs,
            parent_id=job.id,
        )
        session.add(part)
        session.flush()
        for _ in range(size + (1 if number < extra else 0)):
            session.add(
                JobRepeat(
                    job_id=job.id, run_job_id=part.id, index=index, seed=seed_for(seed, index)
                )
            )
            index += 1
        queue.enqueue_training(session, part.id, part.device)
    session.flush()


def settle(session: Session, job_id: str) -> None:
    """After a job's status changed (claimed, ended, cancelled): if it is a part of a repeated
    job, that job follows. A no-op for any other job."""
    parent_id = session.scalar(select(Job.parent_id).where(Job.id == job_id))
    if parent_id is not None:
        sync(session, parent_id)


def sync(session: Session, job_id: str) -> None:
    """Bring a repeated job's status in line with its parts'. The row lock orders parts that end
    at once (PostgreSQL), so the last one to end always sees all the others ended."""
    job = session.execute(
        select(Job)
        .where(Job.id == job_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if job is None or job.repeats == 1 or job.status in FINAL_STATUSES:
        return
    parts = session.execute(
        select(Job.id, Job.status, Job.started_at, Job.error).where(Job.parent_id == job_id)
    ).all()
    if parts and all(part.status in FINAL_STATUSES for part in parts):
        job.status, job.error = _outcome(job, parts)
        job.finished_at = utcnow()
    if job.started_at is None:
        started = [part.started_at for part in parts if part.started_at is not None]
        if started:
            job.started_at = min(started)
            job.status = JobStatus.running if job.status == JobStatus.queued else job.status
    session.flush()


def _outcome(job: Job, parts: Sequence[Any]) -> tuple[str, str | None]:
    if all(part.status == JobStatus.succeeded for part in parts):
        return JobStatus.succeeded, None
    if job.cancel_requested:
        return JobStatus.cancelled, "cancelled; the repeats that had finished keep their metrics"
    failed = [part for part in parts if part.status == JobStatus.failed]
    if failed:
        return JobStatus.failed, (
            f"{len(failed)} of {len(parts)} parts failed (part {failed[0].id}: {failed[0].error})"
        )
    return JobStatus.cancelled, "a part of this job was cancelled"


def settle_stuck(session: Session) -> int:
    """Repeated jobs still active whose parts all ended (a missed `settle`): settle them now."""
    active_parts = select(Job.parent_id).where(
        Job.parent_id.is_not(None), Job.status.in_(ACTIVE_STATUSES)
    )
    stuck = session.scalars(
        select(Job.id).where(
            Job.repeats > 1, Job.status.in_(ACTIVE_STATUSES), Job.id.not_in(active_parts)
        )
    ).all()
    for job_id in stuck:
        sync(session, job_id)
    return len(stuck)


def cancel(session: Session, job: Job) -> Job:
    """Cancel a repeated job: queued parts never run, running ones stop at their next batch."""
    if job.status in FINAL_STATUSES:
        raise Conflict(f"job '{job.id}' already ended ({job.status}); there is nothing to cancel")
    job.cancel_requested = True
    session.flush()
    # Conditional updates: a part a worker claims meanwhile is asked to stop instead.
    queued = session.scalars(
        update(Job)
        .where(Job.parent_id == job.id, Job.status == JobStatus.queued)
        .values(
            status=JobStatus.cancelled, finished_at=utcnow(), error="cancelled before it started"
        )
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).all()
    for part_id in queued:
        storage.delete_checkpoint(part_id)
    session.execute(
        update(Job)
        .where(Job.parent_id == job.id, Job.status == JobStatus.running)
        .values(cancel_requested=True)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    sync(session, job.id)
    return job


def _status(repeat: JobRepeat) -> str:
    if repeat.status != JobStatus.succeeded and repeat.run_job.status in FINAL_STATUSES:
        return repeat.run_job.status  # its part ended before it
    return repeat.status


def summary(job: Job) -> RepeatsSummary:
    """Counts, and per test metric the mean and population std over the repeats that succeeded."""
    statuses = [_status(r) for r in job.repeat_results]
    values: dict[str, list[float]] = {}
    for repeat in job.repeat_results:
        if repeat.status == JobStatus.succeeded:
            for name, value in (repeat.test_metrics or {}).items():
                values.setdefault(name, []).append(float(value))
    return RepeatsSummary(
        requested=job.repeats,
        succeeded=statuses.count(JobStatus.succeeded),
        failed=statuses.count(JobStatus.failed),
        cancelled=statuses.count(JobStatus.cancelled),
        test_metrics={name: aggregate(series) for name, series in values.items()},
    )


def aggregate(values: list[float]) -> MetricAggregate:
    return MetricAggregate(
        mean=statistics.fmean(values),
        std=statistics.pstdev(values),
        min=min(values),
        max=max(values),
        count=len(values),
    )


def progress(job: Job) -> Progress:
    """Epochs trained over all repeats, of `repeats` x `epochs`."""
    done = sum(r.epochs for r in job.repeat_results if r.status == JobStatus.succeeded)
    done += sum(part.epoch for part in job.parts if part.status == JobStatus.running)
    return Progress(epoch=done, epochs=job.repeats * job.epochs)


def read(job: Job) -> RepeatsRead:
    if job.repeats == 1:
        raise NotFound(
            f"job '{job.id}' is not a repeated job (it has no `repeats`)", field="job_id"
        )
    return RepeatsRead(
        job_id=job.id,
        summary=summary(job),
        items=[
            RepeatRead(
                index=r.index,
                seed=r.seed,
                status=_status(r),
                part_job_id=r.run_job_id,
                epochs=r.epochs,
                metrics=r.metrics,
                test_metrics=r.test_metrics,
                seconds=r.seconds,
                finished_at=r.finished_at,
            )
            for r in job.repeat_results
        ],
    )
