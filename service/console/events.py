"""A job's live progress for the console's pages: the job's events (as GET /v1/jobs/{id}/events)
authenticated by the session cookie, since a browser's EventSource cannot send an Authorization
header."""

from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import anyio
from fastapi import Request, Response
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send

from service import events
from service.console.pages import COOKIE, Console, console_router, still_signed_in

router = console_router()


class _HeldStream(EventSourceResponse):
    """Gives the owner's event-stream slot back when the stream ends, however it ends."""

    def __init__(self, owner: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owner = owner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            events.SLOTS.give_back(self.owner)


@router.get("/jobs/{job_id}/events")
async def stream_job_events(request: Request, console: Console, job_id: str) -> Response:
    """The job's events (as GET /v1/jobs/{id}/events), for the page's EventSource, which sends
    the session cookie and cannot send an Authorization header. Ends when the session does."""
    await anyio.to_thread.run_sync(events.open_stream, console.principal, job_id)
    cursor = events.parse_cursor(request.headers.get("last-event-id"))
    if cursor.ended:
        return Response(status_code=204)
    cookie = request.cookies.get(COOKIE)

    async def sent() -> AsyncIterator[ServerSentEvent]:
        async for event in events.stream(job_id, cursor, partial(still_signed_in, cookie)):
            yield ServerSentEvent(event.data, event=event.name, id=event.id)

    events.SLOTS.take(console.principal.owner)
    return _HeldStream(console.principal.owner, sent(), ping=15)
