"""A job's live progress as Server-Sent Events."""

from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import Header, Response, status
from sse_starlette import EventSourceResponse, ServerSentEvent

from service import events
from service.api.deps import CurrentPrincipal, v1_router

router = v1_router("/v1/jobs", "jobs")

PING_SECONDS = 15  # a comment line this often keeps proxies from closing a quiet stream

_EXAMPLE = (
    'event: status\nid: 0:running:1\ndata: {"id": "3f2a…", "status": "running", …}\n\n'
    'event: epoch\nid: 1:running:1\ndata: {"epoch": 1, "seconds": 0.41, '
    '"metrics": {"loss": 1520.3, "val_loss": 1466.1, "mae": 34.2, "val_mae": 33.8}}\n\n'
    ": ping\n\n"
    'event: status\nid: 100:succeeded:1\ndata: {"id": "3f2a…", "status": "succeeded", …}\n\n'
)
# Before OpenAPI 3.2, a text/event-stream's `schema` describes each event.
_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["event", "id", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["status", "epoch"]},
        "id": {
            "type": "string",
            "pattern": r"^\d+:(queued|running|succeeded|failed|cancelled)?:\d+$",
            "description": "The stream's position: <epoch>:<status>:<attempts>.",
        },
        "data": {
            "type": "string",
            "description": "JSON: the job (status events) or {epoch, seconds, metrics} (epoch).",
        },
    },
}
_STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "`text/event-stream`. `event: status` carries the job (as GET /v1/jobs/{id}) when the "
            "stream opens and on each change of status; `event: epoch` carries one epoch's "
            "`{epoch, seconds, metrics}` (as in the history). The stream ends after the status "
            "event of a finished job (succeeded, failed, cancelled). Each `id` is the position "
            "`<epoch>:<status>:<attempts>`; reconnect with it in `Last-Event-ID` to get only "
            "what came after. Comment lines (`: ping`) keep idle connections open."
        ),
        "content": {"text/event-stream": {"schema": _EVENT_SCHEMA, "example": _EXAMPLE}},
    },
    204: {"description": "`Last-Event-ID` is the job's final event: there is nothing more."},
}


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    response_model=None,
    responses=_STREAM_RESPONSES,
)
async def stream_job_events(
    principal: CurrentPrincipal,
    job_id: str,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=64,
            description="Resume after this event's id (browsers' EventSource send it themselves).",
        ),
    ] = None,
) -> Response:
    """Live progress (Server-Sent Events): each status change and epoch, until the job ends."""
    await anyio.to_thread.run_sync(events.open_stream, principal, job_id)
    cursor = events.parse_cursor(last_event_id)
    if cursor.ended:
        # 204 tells an EventSource not to reconnect.
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    async def sent() -> AsyncIterator[ServerSentEvent]:
        async for event in events.stream(job_id, cursor):
            yield ServerSentEvent(event.data, event=event.name, id=event.id)

    return EventSourceResponse(sent(), ping=PING_SECONDS)
