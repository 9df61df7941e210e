"""Request latency for /metrics, by route template (`/v1/jobs/{job_id}`, never the raw path, so
ids do not multiply the series), method and status. Each API process counts its own requests."""

import time

from prometheus_client import Histogram, ProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.core.prometheus import REGISTRY

UNMATCHED = "unmatched"  # a path no route serves (404s): one series for all of them

REQUEST_SECONDS = Histogram(
    "dendrite_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
ProcessCollector(registry=REGISTRY)  # this process's CPU seconds, memory, open files


class RequestMetrics:
    """Pure ASGI middleware: times each HTTP request until its response is sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception becomes a 500 further out

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            # The router records the route it matched in the scope.
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            REQUEST_SECONDS.labels(route, scope["method"], str(status)).observe(
                time.perf_counter() - started
            )
