"""Repeated experiments: each repeat's test metrics and their aggregate."""

from service import jobs
from service.api.deps import CurrentPrincipal, SessionDep, v1_router
from service.experiments import repeats
from service.schemas.repeats import RepeatsRead

router = v1_router("/v1/jobs", "jobs")


@router.get("/{job_id}/repeats", response_model=RepeatsRead)
def list_job_repeats(session: SessionDep, principal: CurrentPrincipal, job_id: str) -> RepeatsRead:
    """A repeated job's repeats: seed, status, last epoch and test metrics; mean and std of each."""
    return repeats.read(jobs.get(session, principal, job_id))
