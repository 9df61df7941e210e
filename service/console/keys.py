"""API keys in the console, for admins: the list, a form that creates a key (shown once, on the
page that answers the form) and revoking."""

from typing import Annotated

from fastapi import Form, Request, Response

from service import keys
from service.api.deps import SessionDep
from service.console.pages import Console, check_csrf, console_router, redirect, render
from service.schemas.keys import KeyRead

router = console_router()


def _keys_page(
    request: Request, session: SessionDep, console: Console, created: str | None = None
) -> Response:
    items, _ = keys.page(session)
    return render(
        request,
        "keys.html",
        console,
        status_code=201 if created else 200,
        keys=[KeyRead.model_validate(k) for k in reversed(items)],
        created=created,
    )


@router.get("/keys")
def list_keys(request: Request, session: SessionDep, console: Console) -> Response:
    """Every key (never the key itself), newest first."""
    keys.require_admin(console.principal)
    return _keys_page(request, session, console)


@router.post("/keys")
def create_key(
    request: Request,
    session: SessionDep,
    console: Console,
    csrf: Annotated[str, Form()],
    owner: Annotated[str, Form(max_length=64)],
    admin: Annotated[bool, Form()] = False,
) -> Response:
    """Create a key; this response is the only place it is shown."""
    check_csrf(console, csrf)
    keys.require_admin(console.principal)
    _, token = keys.create(session, owner.strip(), admin=admin)
    return _keys_page(request, session, console, created=token)


@router.post("/keys/{key_id}/revoke")
def revoke_key(
    session: SessionDep, console: Console, key_id: str, csrf: Annotated[str, Form()]
) -> Response:
    """Revoke a key (as DELETE /v1/keys/{id})."""
    check_csrf(console, csrf)
    keys.require_admin(console.principal)
    keys.revoke(session, keys.get(session, key_id).id)
    return redirect("/ui/keys")
