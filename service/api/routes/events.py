"""A job's live progress as Server-Sent Events."""

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

import anyio
from fastapi import Depends, Header, Response, status
from fastapi.security import HTTPAuthorizationCredentials
from sse_starlette import EventSourceResponse, ServerSentEvent

from service import events
from service.api.deps import CurrentPrincipal, bearer, principal_for, v1_router
from service.api.streams import HeldStream
from service.core.config import get_settings
from service.core.errors import DendriteError
from service.core.orm import JobKind
from service.keys import Principal
from service.schemas.common import ErrorBody

log = logging.getLogger(__name__)

router = v1_router("/v1/jobs", "jobs")
batch_router = v1_router("/v1/batch-predictions", "batch predictions")

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
    429: {
        "model": ErrorBody,
        "description": "The owner has DENDRITE_MAX_EVENT_STREAMS_PER_OWNER streams open already "
        "(Retry-After says when to try again).",
    },
}


def _key_check(token: str | None) -> Callable[[], Awaitable[bool]] | None:
    """Whether the stream's key still authenticates (None without authentication)."""
    if not get_settings().auth_enabled:
        return None

    async def still_allowed() -> bool:
        try:
            await principal_for(token)
        except DendriteError:  # revoked (or deleted): the stream ends
            return False
        except Exception:  # the database is away: the key is not known to be revoked
            log.exception("events: could not check an event stream's API key")
        return True

    return still_allowed


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    response_model=None,
    responses=_STREAM_RESPONSES,
)
async def stream_job_events(
    principal: CurrentPrincipal,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
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
    """Live progress (Server-Sent Events): each status change and epoch, until the job ends.

    An owner may hold DENDRITE_MAX_EVENT_STREAMS_PER_OWNER streams at once (429 past it); a
    stream whose API key is revoked ends (a reconnect then gets 401)."""
    return await _stream(principal, credentials, job_id, last_event_id, JobKind.training)


async def _stream(
    principal: Principal,
    credentials: HTTPAuthorizationCredentials | None,
    job_id: str,
    last_event_id: str | None,
    kind: JobKind,
) -> Response:
    await anyio.to_thread.run_sync(events.open_stream, principal, job_id, kind)
    cursor = events.parse_cursor(last_event_id)
    if cursor.ended:
        # 204 tells an EventSource not to reconnect.
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    still_allowed = _key_check(credentials.credentials if credentials else None)

    async def sent() -> AsyncIterator[ServerSentEvent]:
        async for event in events.stream(job_id, cursor, still_allowed):
            yield ServerSentEvent(event.data, event=event.name, id=event.id)

    events.SLOTS.take(principal.owner)  # the response gives it back
    return HeldStream(principal.owner, sent(), ping=PING_SECONDS)


_BATCH_EXAMPLE = (
    'event: status\nid: 0:running:1\ndata: {"id": "5b1c…", "status": "running", …}\n\n'
    'event: progress\nid: 1:running:1\ndata: {"id": "5b1c…", "progress": {"rows_done": '
    '10000, "rows_total": 25000, "rows_failed": 3}, …}\n\n'
    'event: status\nid: 3:succeeded:1\ndata: {"id": "5b1c…", "status": "succeeded", …}\n\n'
)
_BATCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_STREAM_RESPONSES,
    200: {
        "description": "`text/event-stream`: `event: status` on each change of status and "
        "`event: progress` after each chunk, both carrying the batch prediction as GET "
        "/v1/batch-predictions/{id} shows it; ends after the final status. Each `id` is the "
        "position `<chunks>:<status>:<attempts>`, for `Last-Event-ID`.",
        "content": {
            "text/event-stream": {
                "schema": {
                    **_EVENT_SCHEMA,
                    "properties": {
                        **_EVENT_SCHEMA["properties"],
                        "event": {"type": "string", "enum": ["status", "progress"]},
                    },
                },
                "example": _BATCH_EXAMPLE,
            }
        },
    },
}


@batch_router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    response_model=None,
    responses=_BATCH_RESPONSES,
)
async def stream_batch_prediction_events(
    principal: CurrentPrincipal,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    job_id: str,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", max_length=64, description="Resume after this event's id."),
    ] = None,
) -> Response:
    """Live progress of a batch prediction (Server-Sent Events), as for a training job."""
    return await _stream(principal, credentials, job_id, last_event_id, JobKind.batch_prediction)
