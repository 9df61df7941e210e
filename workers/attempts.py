"""A worker's attempt at a job, through the job's lease (`service.leases`): claim it, end it.

The lease knows nothing of repeated jobs, so each status change made here also lets a repeated
job follow its part (`service.experiments.repeats.settle`, a no-op for any other job), in the
same transaction.
"""

from sqlalchemy.orm import Session

from service import leases
from service.core.orm import JobStatus
from service.experiments import repeats
from service.leases import Attempt


def claim(session: Session, sent_for: str, worker: str) -> Attempt | None:
    """For the message sent for job `sent_for`: claim the fairest queued job of its queue
    (`service.leases.claim_next`); None when none is queued."""
    attempt = leases.claim_next(session, sent_for, worker)
    if attempt is not None:
        repeats.settle(session, attempt.job_id)  # a repeated job runs once one of its parts does
    return attempt


def end(session: Session, attempt: Attempt, status: JobStatus, error: str | None = None) -> bool:
    """Record the attempt's outcome as its job's; False when another attempt holds the job now."""
    ended = leases.end(session, attempt, status, error)
    if ended:
        repeats.settle(session, attempt.job_id)
    return ended
