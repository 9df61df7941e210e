"""Signing in with an API key, and out. The key is sent once, in a form's body; the browser then
holds only a session cookie (HttpOnly, SameSite=Strict) that `service.keys` signs and checks."""

import hmac
import secrets
from typing import Annotated

from fastapi import Form, Request, Response
from fastapi.responses import RedirectResponse

from service import keys
from service.api.deps import SessionDep
from service.console.pages import COOKIE, Console, check_csrf, console_router, redirect, render
from service.core import errors
from service.core.config import get_settings

router = console_router()

# Signing in has no session yet: its form's token is checked against a cookie set with the form.
SIGN_IN_COOKIE = "dendrite_sign_in"


@router.get("")
def home() -> RedirectResponse:
    return redirect("/ui/jobs")


@router.get("/sign-in")
def sign_in_form(request: Request) -> Response:
    """The sign-in form."""
    token = secrets.token_urlsafe(24)
    response = render(
        request, "sign_in.html", None, sign_in_token=token, auth=get_settings().auth_enabled
    )
    _set_cookie(request, response, SIGN_IN_COOKIE, token, max_age=3600)
    return response


@router.post("/sign-in")
def sign_in(
    request: Request,
    session: SessionDep,
    sign_in_token: Annotated[str, Form()],
    key: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Check the key and open a session; the page then works with the cookie alone."""
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    if not expected or not hmac.compare_digest(sign_in_token.encode(), expected.encode()):
        raise errors.Forbidden("the sign-in form is stale: reload the page and sign in again")
    try:
        cookie = keys.open_session(session, key.strip() or None)
    except errors.Unauthorized as error:
        token = secrets.token_urlsafe(24)
        response = render(
            request,
            "sign_in.html",
            None,
            status_code=401,
            sign_in_token=token,
            auth=get_settings().auth_enabled,
            error=error.detail,
        )
        _set_cookie(request, response, SIGN_IN_COOKIE, token, max_age=3600)
        return response
    signed_in = redirect("/ui/jobs")
    _set_cookie(
        request, signed_in, COOKIE, cookie, max_age=int(keys.SESSION_LIFETIME.total_seconds())
    )
    signed_in.delete_cookie(SIGN_IN_COOKIE, path="/ui")
    return signed_in


@router.post("/sign-out")
def sign_out(console: Console, csrf: Annotated[str, Form()]) -> Response:
    """Forget the session in this browser."""
    check_csrf(console, csrf)
    response = redirect("/ui/sign-in")
    response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")
    return response


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
