"""What every console page shares: the signed-in session (from its cookie), CSRF checks, the
templates, and the Content-Security-Policy that lets a page run only the console's own files."""

import hmac
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from service import keys
from service.api.deps import UnitOfWorkRoute
from service.core import errors
from service.core.db import session_scope

COOKIE = "dendrite_console"
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",  # the job's event stream
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {"Content-Security-Policy": POLICY, "Cache-Control": "no-store"}


class SignInNeeded(Exception):
    """No valid session: the page answers with a redirect to the sign-in page."""


class ConsoleRoute(UnitOfWorkRoute):
    """A console route: a domain error becomes an HTML page with its status, and a request
    without a session goes to the sign-in page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInNeeded:
                return RedirectResponse("/ui/sign-in", status_code=303)
            except errors.DendriteError as error:
                console = await _signed_in_or_none(request)
                return render(
                    request, "error.html", console, error=error, status_code=error.status_code
                )

        return route


def console_router() -> APIRouter:
    return APIRouter(prefix="/ui", route_class=ConsoleRoute, include_in_schema=False)


def _resume(cookie: str | None) -> keys.ConsoleSession:
    with session_scope() as session:
        return keys.resume_session(session, cookie)


async def current(request: Request) -> keys.ConsoleSession:
    """The signed-in console session; its own short unit of work, for sync and async pages."""
    try:
        return await anyio.to_thread.run_sync(_resume, request.cookies.get(COOKIE))
    except errors.Unauthorized:
        raise SignInNeeded from None


async def still_signed_in(cookie: str | None) -> bool:
    """Whether a session still holds (for a long event stream: its key may be revoked since)."""
    try:
        await anyio.to_thread.run_sync(_resume, cookie)
    except errors.Unauthorized:
        return False
    return True


async def _signed_in_or_none(request: Request) -> keys.ConsoleSession | None:
    try:
        return await current(request)
    except SignInNeeded:
        return None


Console = Annotated[keys.ConsoleSession, Depends(current)]


def check_csrf(console: keys.ConsoleSession, token: str) -> None:
    """A form's hidden token must be its session's: another site cannot post as the user."""
    if not hmac.compare_digest(token.encode(), console.csrf_token.encode()):
        raise errors.Forbidden("the form's session token is stale or missing: reload the page")


def render(
    request: Request,
    template: str,
    console: keys.ConsoleSession | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page, with the console's headers."""
    return templates.TemplateResponse(
        request,
        template,
        {"console": console, **context},
        status_code=status_code,
        headers=HEADERS,
    )


def redirect(path: str) -> RedirectResponse:
    """After a form: see the result with a GET (303)."""
    return RedirectResponse(path, status_code=303, headers={"Cache-Control": "no-store"})


class SessionBeforeBody:
    """A console form is refused (to the sign-in page) without a valid session before its body is
    read: without one, an upload would be spooled to disk only to be turned away."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        if scope.get("method") == "POST" and path.startswith("/ui/") and path != "/ui/sign-in":
            cookie = cookie_parser(Headers(scope=scope).get("cookie", "")).get(COOKIE)
            if not await still_signed_in(cookie):
                await RedirectResponse("/ui/sign-in", status_code=303)(scope, receive, send)
                return
        await self.app(scope, receive, send)
