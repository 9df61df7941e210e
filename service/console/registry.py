"""Registered models in the console: names, each one's versions with their lineage and aliases,
the alias history, and a form that moves an alias."""

from typing import Annotated

from fastapi import Form, Request, Response

from service import registry
from service.api.deps import SessionDep
from service.console.pages import Console, check_csrf, console_router, redirect, render
from service.schemas.registry import ALIAS_PATTERN

router = console_router()


@router.get("/models")
def list_registered_models(request: Request, session: SessionDep, console: Console) -> Response:
    """Your registered models, by name, with their aliases."""
    items, total = registry.page(session, console.principal, 200, 0)
    reads = [registry.to_read(session, r) for r in items]
    return render(request, "models.html", console, models=reads, total=total)


@router.get("/models/{name}")
def show_registered_model(
    request: Request, session: SessionDep, console: Console, name: str
) -> Response:
    """One registered model: versions (newest first), aliases, alias moves, the move form."""
    registered = registry.get(session, console.principal, name)
    versions = [registry.version_to_read(registered, v) for v in registered.versions]
    versions.reverse()
    return render(
        request,
        "model.html",
        console,
        model=registry.to_read(session, registered),
        versions=versions,
        moves=[registry.move_to_read(m) for m in registry.moves(session, console.principal, name)],
        # The browser reads `pattern` as a /v regular expression: a literal '-' is escaped there.
        alias_pattern=ALIAS_PATTERN.strip("^$").replace("-]", "\\-]"),
    )


@router.post("/models/{name}/aliases")
def move_alias(
    session: SessionDep,
    console: Console,
    name: str,
    csrf: Annotated[str, Form()],
    alias: Annotated[str, Form(pattern=ALIAS_PATTERN)],
    version: Annotated[int, Form(ge=1)],
) -> Response:
    """Point an alias at a version (as PUT /v1/registered-models/{name}/aliases/{alias})."""
    check_csrf(console, csrf)
    registry.set_alias(session, console.principal, name, alias, version)
    return redirect(f"/ui/models/{name}")
