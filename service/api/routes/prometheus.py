"""Prometheus metrics: counts and timings, nothing of any owner's. Who may read them is
DENDRITE_METRICS_EXPOSURE: `key` (the default: any valid API key, as a scraper's bearer token),
`open` (anyone who reaches the port), or `off` (404)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.api.deps import AUTH_RESPONSES, bearer, principal_for
from service.core.config import get_settings
from service.core.errors import NotFound
from service.core.prometheus import REGISTRY

router = APIRouter(tags=["operations"])


async def exposed(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """404 when metrics are off; 401 without a valid key when they need one."""
    settings = get_settings()
    if settings.metrics_exposure == "off":
        raise NotFound("metrics are not served here (DENDRITE_METRICS_EXPOSURE=off)")
    if settings.metrics_exposure == "key" and settings.auth_enabled:
        await principal_for(credentials.credentials if credentials else None)


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(exposed)],
    responses={
        200: {"description": "Prometheus text format", "content": {"text/plain": {}}},
        **AUTH_RESPONSES,
    },
)
def read_metrics() -> Response:
    """Prometheus metrics: request latency, jobs by status, queue depth, training time. Needs an
    API key unless DENDRITE_METRICS_EXPOSURE=open."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
