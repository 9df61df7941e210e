"""Spec validation without training."""

from typing import Annotated

from fastapi import APIRouter, Body

from service import specs
from service.api.deps import AUTH_RESPONSES, CurrentPrincipal, SessionDep, UnitOfWorkRoute
from service.api.routes.jobs import JOB_EXAMPLES
from service.schemas import JobCreate, SpecSummary

router = APIRouter(
    prefix="/v1/specs", tags=["specs"], responses=AUTH_RESPONSES, route_class=UnitOfWorkRoute
)


@router.post("/validate", response_model=SpecSummary)
def validate_spec(
    session: SessionDep,
    principal: CurrentPrincipal,
    request: Annotated[JobCreate, Body(openapi_examples=JOB_EXAMPLES)],
) -> SpecSummary:
    """Check a job request and build its network without training: layers, shapes, parameters."""
    return specs.validate(session, principal, request)
