"""Repeated experiments: each repeat's test metrics and their aggregate."""

from fastapi import APIRouter

from service import jobs, repeats
from service.api.deps import AUTH_RESPONSES, CurrentPrincipal, SessionDep, UnitOfWorkRoute
from service.schemas import RepeatsRead

router = APIRouter(
    prefix="/v1/jobs", tags=["jobs"], responses=AUTH_RESPONSES, route_class=UnitOfWorkRoute
)


@router.get("/{job_id}/repeats", response_model=RepeatsRead)
def list_job_repeats(session: SessionDep, principal: CurrentPrincipal, job_id: str) -> RepeatsRead:
    """A repeated job's repeats: seed, status, last epoch and test metrics; mean and std of each."""
    return repeats.read(jobs.get(session, principal, job_id))
