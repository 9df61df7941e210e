"""A request with a body is refused without a valid API key before its body is read.

FastAPI reads and parses a body before it runs the dependency that checks the key, so a client
without a key could make the API stream a large upload to disk, or parse a large JSON body, only
to be told 401 at the end; and a malformed body without a key got its 422 rather than the 401.
Every POST, PUT and PATCH under /v1/ needs a key, so these are checked here first. The route's
own dependency then finds the key in `keys.recent` and does not look it up again.
"""

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.deps import principal_for
from service.api.errors import envelope
from service.core.config import get_settings
from service.core.errors import DendriteError

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, as FastAPI's HTTPBearer reads it."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class KeyBeforeBody:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in BODY_METHODS
            and scope["path"].startswith(("/v1/", "/v2/"))
            and get_settings().auth_enabled
        ):
            token = _bearer_token(Headers(scope=scope).get("authorization"))
            try:
                await principal_for(token)
            except DendriteError as error:
                response = envelope(
                    error.status_code, error.kind, error.detail, headers=error.headers
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
