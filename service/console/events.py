"""A job's live progress for the console's pages: the job's events (as GET /v1/jobs/{id}/events)
authenticated by the session cookie, since a browser's EventSource cannot send an Authorization
header."""

from collections.abc import AsyncIterator
from functools import partial

import anyio
from fastapi import Request, Response
from sse_starlette import ServerSentEvent

from service import events
from service.api.streams import HeldStream
from service.console.pages import COOKIE, Console, console_router, still_signed_in

router = console_router()


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
    return HeldStream(console.principal.owner, sent(), ping=15)
