"""The HTTP protocol `dendrite api` and `dendrite serve` run: uvicorn's httptools protocol with
limits on what one connection may hold.

- A request's line and headers: httptools buffers any amount of header data (a 100 MB header was
  read whole) and uvicorn sets no limit of its own. Past DENDRITE_MAX_HEADER_BYTES the client gets
  a 431 in the error envelope and the connection is closed.
- Time: uvicorn has no header timeout and no body timeout (500 connections that never finished
  their headers stayed open for as long as their clients liked). A request's headers must arrive
  whole within DENDRITE_HEADER_TIMEOUT seconds of its first byte (or of the connection), and a
  body may not go DENDRITE_BODY_TIMEOUT seconds without a byte; otherwise a 408 in the envelope,
  and the connection is closed. Time the application itself takes to read a body (reading paused)
  or to ask for it (`Expect: 100-continue`) is not the client's, and does not count.
- Connections: past DENDRITE_MAX_CONNECTIONS (uvicorn's `limit_concurrency`) a request gets a 503
  in the envelope, with Retry-After, instead of uvicorn's plain-text one.
"""

import asyncio
import json
from collections.abc import Callable
from typing import Any

from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from service.core.config import get_settings

PROTOCOL = "service.api.http:HttpProtocol"  # for uvicorn.run(http=...) and `uvicorn --http`
RETRY_AFTER_SECONDS = 1  # for a request refused because the server is at its connection limit


class HeadersTooLarge(Exception):
    pass


def error_response(status_line: bytes, kind: str, detail: str, extra: bytes = b"") -> bytes:
    """A whole HTTP/1.1 response carrying the error envelope, that closes the connection."""
    body = json.dumps({"error": kind, "detail": detail}).encode()
    return (
        b"HTTP/1.1 " + status_line + b"\r\n"
        b"content-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n" + extra + b"connection: close\r\n"
        b"\r\n" + body
    )


async def connection_limit_reached(scope: Scope, receive: Receive, send: Send) -> None:
    body = json.dumps(
        {
            "error": "service_unavailable",
            "detail": "the server has as many connections open as it takes "
            f"({get_settings().max_connections}, setting DENDRITE_MAX_CONNECTIONS); "
            "retry in a moment",
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class HttpProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        settings = get_settings()
        self.header_limit = settings.max_header_bytes
        self.header_timeout = settings.header_timeout
        self.body_timeout = settings.body_timeout
        self.header_bytes = 0  # of the request line and headers parsed so far
        self.unparsed_bytes = 0  # read while the headers are incomplete
        self.reading_headers = True
        self.reading_body = False
        self.body_seen_at = 0.0  # loop time of the body's last bytes
        self.refused = False
        self.deadline: asyncio.TimerHandle | None = None
        self._arm(self.header_timeout, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.reading_headers:
            self.unparsed_bytes += len(data)
        super().data_received(data)
        # httptools hands over a header only once it is complete: a header that never ends is
        # caught by the bytes read while the headers are still incomplete after this read.
        if self.reading_headers and self.unparsed_bytes > self.header_limit:
            self.refused = True
            self.send_400_response("")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.header_bytes = 0
        if (
            self.deadline is None
        ):  # the next request on a kept-alive connection: from its first byte
            self._arm(self.header_timeout, self._headers_late)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.reading_headers = False
        self._disarm()
        super().on_headers_complete()
        self.reading_body = True
        self.body_seen_at = self.loop.time()
        self._arm(self.body_timeout, self._body_late)

    def on_body(self, body: bytes) -> None:
        self.body_seen_at = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.reading_body = False
        self._disarm()
        self.reading_headers, self.unparsed_bytes = True, 0  # a pipelined request may follow

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        if app is service_unavailable:  # uvicorn's limit_concurrency: answer in the envelope
            app = connection_limit_reached
        super()._start_asgi_task(cycle, app)

    def _count(self, size: int) -> None:
        self.header_bytes += size
        if self.header_bytes > self.header_limit:
            self.refused = True
            raise HeadersTooLarge  # httptools stops; uvicorn answers through send_400_response

    def send_400_response(self, msg: str) -> None:
        if not self.refused:
            super().send_400_response(msg)
            return
        if self.transport.is_closing():
            return
        detail = (
            f"the request line and headers are larger than {self.header_limit} "
            "bytes (setting DENDRITE_MAX_HEADER_BYTES); send fewer or shorter headers"
        )
        status = b"431 Request Header Fields Too Large"
        self._close_with(error_response(status, "request_header_fields_too_large", detail))

    # Timeouts: one timer per connection, for the phase it is in.

    def _arm(self, seconds: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self.deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _headers_late(self) -> None:
        self.deadline = None
        if self.transport.is_closing() or not self.reading_headers:
            return
        if self.unparsed_bytes == 0:  # nothing of a request came: close quietly, like a keep-alive
            self.transport.close()
            return
        self._close_with(
            error_response(
                b"408 Request Timeout",
                "request_timeout",
                f"the request's headers did not arrive within {self.header_timeout:g} s "
                "(setting DENDRITE_HEADER_TIMEOUT); send the request line and headers at once",
            )
        )

    def _body_late(self) -> None:
        self.deadline = None
        if self.transport.is_closing() or not self.reading_body:
            return
        waited = self.loop.time() - self.body_seen_at
        cycle = self.cycle
        # Not the client's time: the application has not read what came (reading is paused), or
        # has not yet asked for the body that an `Expect: 100-continue` client holds back.
        app_turn = self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue)
        if app_turn or waited < self.body_timeout:
            self.body_seen_at = self.loop.time() if app_turn else self.body_seen_at
            self._arm(self.body_timeout - (0 if app_turn else waited), self._body_late)
            return
        if cycle is not None and cycle.response_started:
            self.transport.close()  # the application answered already; nothing more can be said
            return
        self._close_with(
            error_response(
                b"408 Request Timeout",
                "request_timeout",
                f"the request body stalled: no bytes for {self.body_timeout:g} s (setting "
                "DENDRITE_BODY_TIMEOUT); send the body without pauses, or retry",
            )
        )

    def _close_with(self, response: bytes) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the application's answer, if any, goes nowhere
        self.transport.write(response)
        self.transport.close()
