"""Every error response is the one envelope: {"error", "detail", "field"?}. 500 means a bug."""

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

from service.core.errors import INSUFFICIENT_STORAGE_DETAIL, DendriteError, out_of_space
from service.schemas.common import ErrorBody

log = logging.getLogger(__name__)

# Declared on every operation, so the OpenAPI document (and the clients made from it) shows the
# envelope rather than FastAPI's own validation-error shape.
RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody, "description": "Invalid: `detail` says how to fix it."},
    "4XX": {"model": ErrorBody, "description": "The request cannot be served as sent."},
    500: {"model": ErrorBody, "description": "A bug in dendrite: it has been logged."},
    507: {
        "model": ErrorBody,
        "description": "`insufficient_storage`: a disk or the database is full; nothing of the "
        "request was saved. Try again once the operator has freed space.",
    },
}

_KINDS = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    422: "invalid_input",
}


def envelope(
    status: int,
    kind: str,
    detail: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"error": kind, "detail": detail}
    if field is not None:
        body["field"] = field
    body.update(extra or {})
    return JSONResponse(body, status_code=status, headers=headers)


def _out_of_space(error: BaseException) -> JSONResponse | None:
    """The 507 for an error that means a disk or the database is full (whatever raised it: the
    artifact store, the multipart parser's spool file, SQLite, PostgreSQL); else None. The unit
    of work has rolled back, and a stored file follows it, so nothing of the request is kept."""
    if not out_of_space(error):
        return None
    log.error("out of storage space: %s", error)
    return envelope(507, "insufficient_storage", INSUFFICIENT_STORAGE_DETAIL)


def _pointer(location: tuple[Any, ...] | list[Any], body: Any = None) -> str:
    parts = list(location)
    if parts and parts[0] in ("body", "query", "path", "header"):
        source, parts = parts[0], parts[1:]
        if source != "body" or isinstance(body, FormData):  # a parameter or form field: its name
            return ".".join(str(p) for p in parts)
    # Pydantic puts a union member's tag in the path (a layer's "dense", or a "function-after[...]"
    # label): walk the body alongside and drop what is not a key or index there.
    pointer: list[str] = []
    node = body
    for part in parts:
        if isinstance(node, dict) and part not in node and node.get("type") == part:
            continue
        if isinstance(part, str) and part.startswith(("function-after", "tagged-union")):
            continue
        pointer.append(str(part))
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and -len(node) <= part < len(node):
            node = node[part]
        else:
            node = None
    return "/" + "/".join(pointer)


def _message(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")


def _not_json(content_type: str | None) -> JSONResponse:
    """FastAPI hands a JSON route the raw bytes when the Content-Type does not say JSON. dendrite
    does not guess: a browser form may send text/plain cross-site without a CORS preflight."""
    sent = f"as '{content_type}'" if content_type else "without a Content-Type"
    return envelope(
        415,
        "unsupported_media_type",
        f"the request body was sent {sent}; this endpoint reads JSON: send it with the header "
        "'Content-Type: application/json'",
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(DendriteError)
    async def _domain(_: Request, error: DendriteError) -> JSONResponse:
        return envelope(
            error.status_code, error.kind, error.detail, error.field, error.headers, error.extra
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError) -> JSONResponse:
        if isinstance(error.body, bytes):
            return _not_json(request.headers.get("content-type"))
        errors = list(error.errors())
        first: dict[str, Any] = dict(errors[0]) if errors else {"loc": (), "msg": "invalid request"}
        context: dict[str, Any] = first.get("ctx") or {}
        location = list(first.get("loc", ()))
        if first.get("type") == "json_invalid":
            # Its location is a character offset into the body, not a field.
            offset = location[-1] if location else None
            at = f" at character {offset}" if isinstance(offset, int) else ""
            detail = f"the request body is not valid JSON: {context.get('error', 'unreadable')}{at}"
            return envelope(422, "invalid_input", detail)
        field = _pointer(location, error.body)
        if first.get("type") in ("union_tag_invalid", "union_tag_not_found"):
            # The fault is the tag itself (e.g. a layer's "type"), not the whole member.
            field += "/" + str(context.get("discriminator", "type")).strip("'")
        has_field = field not in ("", "/")
        if has_field:
            detail = f"{field}: {_message(first)}"
        elif first.get("type") == "missing":
            detail = "the request body is missing; send a JSON object (see /docs for examples)"
        else:
            detail = f"the request body: {_message(first)}"
        if len(errors) > 1:
            detail += f" (and {len(errors) - 1} more problem(s))"
        return envelope(422, "invalid_input", detail, field if has_field else None)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, error: HTTPException) -> JSONResponse:
        kind = _KINDS.get(error.status_code, "http_error")
        cause = error.__cause__
        if cause is not None and (full := _out_of_space(cause)) is not None:
            return full  # FastAPI's 400 "error parsing the body": the spool file filled a disk
        if isinstance(cause, UnicodeDecodeError):  # FastAPI's "error parsing the body"
            byte = cause.object[cause.start]
            detail = (
                f"the request body is not UTF-8 text (byte 0x{byte:02x} at position "
                f"{cause.start}); send JSON encoded as UTF-8"
            )
            return envelope(error.status_code, kind, detail, headers=error.headers)
        # Its headers too: a 405's Allow, a cut-off body's Connection: close.
        return envelope(error.status_code, kind, str(error.detail), headers=error.headers)

    # Handled here, not as a 500 (which Starlette re-raises after answering).
    @app.exception_handler(OSError)
    @app.exception_handler(SQLAlchemyError)
    async def _storage(request: Request, error: Exception) -> JSONResponse:
        return _out_of_space(error) or await _unexpected(request, error)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:
        if (full := _out_of_space(error)) is not None:
            return full
        log.exception("unhandled error", exc_info=error)
        return envelope(500, "internal_error", "an unexpected error occurred; it has been logged")
