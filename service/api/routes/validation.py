"""Spec validation without training."""

from typing import Annotated

from fastapi import Body

from service import validation
from service.api.deps import CurrentPrincipal, SessionDep, v1_router
from service.api.routes.jobs import JOB_EXAMPLES
from service.schemas.jobs import JobCreate
from service.schemas.validation import SpecSummary

router = v1_router("/v1/specs", "specs")


@router.post("/validate", response_model=SpecSummary)
def validate_spec(
    session: SessionDep,
    principal: CurrentPrincipal,
    request: Annotated[JobCreate, Body(openapi_examples=JOB_EXAMPLES)],
) -> SpecSummary:
    """Check a job request and build its network without training: layers, shapes, parameters."""
    return validation.validate(session, principal, request)
