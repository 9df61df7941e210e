"""Registered models: names, numbered versions of trained models, and aliases that move."""

from typing import Annotated

from fastapi import Path, Response, status

from service import registry
from service.api.deps import CurrentPrincipal, Limit, Offset, SessionDep, v1_router
from service.schemas.common import Page
from service.schemas.registry import (
    ALIAS_PATTERN,
    AliasMoveRead,
    AliasSet,
    RegisteredModelCreate,
    RegisteredModelRead,
    VersionCreate,
    VersionRead,
)

router = v1_router("/v1/registered-models", "registered models")

Name = Annotated[str, Path(description="The registered model's name.")]
Alias = Annotated[
    str, Path(pattern=ALIAS_PATTERN, description="An alias, e.g. production or champion.")
]


@router.post("", response_model=RegisteredModelRead, status_code=status.HTTP_201_CREATED)
def create_registered_model(
    session: SessionDep, principal: CurrentPrincipal, body: RegisteredModelCreate
) -> RegisteredModelRead:
    """Create a name for a line of models (unique among yours). Add versions to it, then point
    aliases at them: `name@alias` and `name/versions/n` work wherever a model id does."""
    registered = registry.create(session, principal, body.name, body.description)
    return registry.to_read(session, registered)


@router.get("", response_model=Page[RegisteredModelRead])
def list_registered_models(
    session: SessionDep, principal: CurrentPrincipal, limit: Limit = 50, offset: Offset = 0
) -> Page[RegisteredModelRead]:
    """Your registered models, by name."""
    items, total = registry.page(session, principal, limit, offset)
    return Page(
        items=[registry.to_read(session, r) for r in items], total=total, limit=limit, offset=offset
    )


@router.get("/{name}", response_model=RegisteredModelRead)
def get_registered_model(
    session: SessionDep, principal: CurrentPrincipal, name: Name
) -> RegisteredModelRead:
    """A registered model: its latest version and where each alias points."""
    return registry.to_read(session, registry.get(session, principal, name))


@router.post("/{name}/versions", response_model=VersionRead, status_code=status.HTTP_201_CREATED)
def add_version(
    session: SessionDep, principal: CurrentPrincipal, name: Name, body: VersionCreate
) -> VersionRead:
    """Register a trained model as the next version (1, 2, ...), with its lineage."""
    version = registry.add_version(session, principal, name, body.model_id)
    return registry.version_to_read(registry.get(session, principal, name), version)


@router.get("/{name}/versions", response_model=list[VersionRead])
def list_versions(
    session: SessionDep, principal: CurrentPrincipal, name: Name
) -> list[VersionRead]:
    """Every version, oldest first, with its lineage."""
    registered = registry.get(session, principal, name)
    return [registry.version_to_read(registered, v) for v in registered.versions]


@router.get("/{name}/versions/{version}", response_model=VersionRead)
def get_version(
    session: SessionDep, principal: CurrentPrincipal, name: Name, version: int
) -> VersionRead:
    """One version: its model id, aliases and lineage."""
    registered = registry.get(session, principal, name)
    return registry.version_to_read(registered, registry.version(session, principal, name, version))


@router.put("/{name}/aliases/{alias}", response_model=VersionRead)
def set_alias(
    session: SessionDep, principal: CurrentPrincipal, name: Name, alias: Alias, body: AliasSet
) -> VersionRead:
    """Point an alias at a version (new or moved; recorded). The next request for `name@alias`
    is served by that version: at once by this API process, within 2 s by the others."""
    version = registry.set_alias(session, principal, name, alias, body.version)
    return registry.version_to_read(registry.get(session, principal, name), version)


@router.delete("/{name}/aliases/{alias}", status_code=status.HTTP_204_NO_CONTENT)
def delete_alias(
    session: SessionDep, principal: CurrentPrincipal, name: Name, alias: Alias
) -> Response:
    """Remove an alias (recorded); `name@alias` then answers 404."""
    registry.delete_alias(session, principal, name, alias)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{name}/alias-moves", response_model=list[AliasMoveRead])
def list_alias_moves(
    session: SessionDep, principal: CurrentPrincipal, name: Name
) -> list[AliasMoveRead]:
    """Every alias change, oldest first: who, when, from which version to which."""
    return [registry.move_to_read(m) for m in registry.moves(session, principal, name)]
