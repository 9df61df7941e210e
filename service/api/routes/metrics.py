"""Prometheus metrics (open, like /healthz: counts and timings, nothing of any owner's)."""

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.metrics import REGISTRY

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"description": "Prometheus text format", "content": {"text/plain": {}}}},
)
def read_metrics() -> Response:
    """Prometheus metrics: request latency, jobs by status, queue depth, training time."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
