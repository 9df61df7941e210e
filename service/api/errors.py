"""Every error response is the one envelope: {"error", "detail", "field"?}. 500 means a bug."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from service.errors import DendriteError

log = logging.getLogger(__name__)

_KINDS = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def envelope(status: int, kind: str, detail: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": kind, "detail": detail}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status)


def _pointer(location: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in location]
    if parts and parts[0] in ("body", "query", "path", "header"):
        source, parts = parts[0], parts[1:]
        if source != "body":
            return ".".join(parts)
    # Pydantic adds the discriminator's tag to the path of a union member: drop it.
    parts = [p for p in parts if not p.startswith(("function-after", "tagged-union"))]
    return "/" + "/".join(parts)


def _message(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")


def install(app: FastAPI) -> None:
    @app.exception_handler(DendriteError)
    async def _domain(_: Request, error: DendriteError) -> JSONResponse:
        return envelope(error.status_code, error.kind, error.detail, error.field)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, error: RequestValidationError) -> JSONResponse:
        errors = list(error.errors())
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        field = _pointer(first.get("loc", ()))
        detail = f"{field}: {_message(first)}" if field not in ("", "/") else _message(first)
        if len(errors) > 1:
            detail += f" (and {len(errors) - 1} more problem(s))"
        return envelope(422, "invalid_input", detail, field if field not in ("", "/") else None)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, error: HTTPException) -> JSONResponse:
        kind = _KINDS.get(error.status_code, "http_error")
        return envelope(error.status_code, kind, str(error.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=error)
        return envelope(500, "internal_error", "an unexpected error occurred; it has been logged")
