"""Limits on a request body, enforced before anything reads it whole: its size and JSON nesting.

Pure ASGI, so an oversized body is refused from its Content-Length, or cut off while it streams
(chunked), before FastAPI or the multipart parser buffers or spools it. Uploads to
`POST /v1/datasets` may be as large as DENDRITE_MAX_UPLOAD_BYTES; every other body as large as
DENDRITE_MAX_REQUEST_BYTES. JSON bodies are scanned as they arrive for nesting deeper than
DENDRITE_MAX_JSON_DEPTH, which would otherwise reach the parsers' recursion limits. A URL with a
NUL character is refused too: no id or name holds one, and PostgreSQL cannot even look one up.
"""

import re

import numpy as np
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import envelope
from service.core.config import get_settings

UPLOAD_PATH = "/v1/datasets"
# The console's upload form (service/console/datasets.py); its session is checked before the body
# is read (service/console/pages.py: SessionBeforeBody), as an API key is for UPLOAD_PATH.
CONSOLE_UPLOAD_PATH = "/ui/datasets"
# Around the file itself: the multipart boundaries, part headers and the `name` field.
MULTIPART_OVERHEAD = 64 << 10
# The bytes that matter to nesting; backslashes and quotes delimit strings, where brackets do not.
_STRUCTURE = re.compile(rb'[][{}"\\]')


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int, upload: bool) -> None:
        if upload:
            what, setting, advice = "upload", "DENDRITE_MAX_UPLOAD_BYTES", ""
        else:
            what, setting = "request body", "DENDRITE_MAX_REQUEST_BYTES"
            advice = "; split it into smaller requests (e.g. fewer instances per prediction)"
        super().__init__(
            413,
            f"the {what} is larger than the limit of {_human(limit)} ({limit} bytes, setting "
            f"{setting}){advice}",
            # The rest of the body is not read: the connection cannot carry another request.
            headers={"Connection": "close"},
        )


class JsonTooDeep(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(
            422,
            f"the JSON body nests arrays and objects more than {limit} levels deep (setting "
            "DENDRITE_MAX_JSON_DEPTH); no dendrite request needs that many",
        )


class JsonDepth:
    """Tracks the nesting depth of a JSON document fed to it in chunks; raises past `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.depth = 0
        self.in_string = False
        self.escaped = False  # the next byte is escaped (a backslash ended the previous chunk)

    def feed(self, chunk: bytes) -> None:
        if self.escaped or b"\\" in chunk:
            self._feed_escaped(chunk)
        else:
            self._feed_plain(chunk)

    def _feed_plain(self, chunk: bytes) -> None:
        """A chunk without backslashes, where every quote opens or closes a string: numpy finds
        the depth at each bracket at once (a large prediction batch has tens of thousands of
        quotes, too many for a Python loop on every request)."""
        data = np.frombuffer(chunk, dtype=np.uint8)
        quotes = np.flatnonzero(data == ord('"'))
        brackets = np.flatnonzero(
            (data == ord("[")) | (data == ord("{")) | (data == ord("]")) | (data == ord("}"))
        )
        # A bracket is structure when an even number of quotes (after this chunk's start
        # state) precede it; the others are inside strings.
        before = np.searchsorted(quotes, brackets) + int(self.in_string)
        brackets = brackets[before % 2 == 0]
        self.in_string = (len(quotes) + int(self.in_string)) % 2 == 1
        if not len(brackets):
            return
        kinds = data[brackets]
        steps = np.where((kinds == ord("[")) | (kinds == ord("{")), 1, -1)
        # depth_t = max(0, depth_(t-1) + step_t), in closed form: S_t - min(0, min_k<=t S_k).
        unclamped = self.depth + np.cumsum(steps)
        depths = unclamped - np.minimum(np.minimum.accumulate(unclamped), 0)
        if int(depths.max()) > self.limit:
            raise JsonTooDeep(self.limit)
        self.depth = int(depths[-1])

    def _feed_escaped(self, chunk: bytes) -> None:
        skip = 0 if self.escaped else -1
        self.escaped = False
        for match in _STRUCTURE.finditer(chunk):
            position, byte = match.start(), match.group()
            if position == skip:
                continue
            if self.in_string:
                if byte == b"\\":
                    skip = position + 1
                    self.escaped = skip == len(chunk)
                elif byte == b'"':
                    self.in_string = False
            elif byte == b'"':
                self.in_string = True
            elif byte in (b"[", b"{"):
                self.depth += 1
                if self.depth > self.limit:
                    raise JsonTooDeep(self.limit)
            elif byte in (b"]", b"}"):
                self.depth = max(0, self.depth - 1)


def _is_json(content_type: str | None) -> bool:
    """JSON or no Content-Type (the predict route reads a body without one as JSON)."""
    if not content_type:
        return True
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


class RequestLimits:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"%00" in scope["query_string"]:
            detail = "the URL holds a NUL character (%00); no id, name or parameter contains one"
            await envelope(400, "bad_request", detail)(scope, receive, send)
            return
        settings = get_settings()
        upload = scope["method"] == "POST" and scope["path"].rstrip("/") in (
            UPLOAD_PATH,
            CONSOLE_UPLOAD_PATH,
        )
        # An upload's message names the file limit; the multipart framing gets room on top.
        if upload:
            refused_over = settings.max_upload_bytes
            limit = refused_over + MULTIPART_OVERHEAD
        else:
            limit = refused_over = settings.max_request_bytes
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            error = BodyTooLarge(refused_over, upload)
            response = envelope(413, "payload_too_large", error.detail, headers=error.headers)
            await response(scope, receive, send)
            return
        depth = None
        if not upload and _is_json(headers.get("content-type")):
            depth = JsonDepth(settings.max_json_depth)
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                body: bytes = message.get("body", b"")
                received += len(body)
                if received > limit:
                    raise BodyTooLarge(refused_over, upload)
                if depth is not None:
                    depth.feed(body)
            return message

        await self.app(scope, limited_receive, send)


def _human(size: int) -> str:
    value, unit = float(size), "bytes"
    for larger in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{value:.4g} {unit}"
