"""API keys, for admins: list, create (the key is shown once), revoke."""

from typing import Any

from fastapi import Response, status

from service import keys
from service.api.deps import CurrentPrincipal, Limit, Offset, SessionDep, v1_router
from service.schemas.common import ErrorBody, Page
from service.schemas.keys import KeyCreate, KeyCreated, KeyRead

router = v1_router("/v1/keys", "keys")

_ADMIN_ONLY: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorBody, "description": "`forbidden`: the key is not an admin's."}
}


@router.get("", response_model=Page[KeyRead], responses=_ADMIN_ONLY)
def list_keys(
    session: SessionDep, principal: CurrentPrincipal, limit: Limit = 50, offset: Offset = 0
) -> Page[KeyRead]:
    """Every API key, oldest first: owner, prefix, admin or not, when created, revoked, last
    used. Never the key itself."""
    keys.require_admin(principal)
    items, total = keys.page(session, limit, offset)
    return Page(
        items=[KeyRead.model_validate(k) for k in items], total=total, limit=limit, offset=offset
    )


@router.post(
    "", response_model=KeyCreated, status_code=status.HTTP_201_CREATED, responses=_ADMIN_ONLY
)
def create_key(
    session: SessionDep, principal: CurrentPrincipal, response: Response, body: KeyCreate
) -> KeyCreated:
    """Create a key for an owner. The response holds the key itself, this once: dendrite stores
    only its hash."""
    keys.require_admin(principal)
    key, token = keys.create(session, body.owner, admin=body.admin)
    response.headers["Location"] = f"/v1/keys/{key.id}"
    response.headers["Cache-Control"] = "no-store"
    return KeyCreated(**KeyRead.model_validate(key).model_dump(), key=token)


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_ADMIN_ONLY, 404: {"model": ErrorBody, "description": "No key has this id."}},
)
def revoke_key(session: SessionDep, principal: CurrentPrincipal, key_id: str) -> Response:
    """Revoke a key: every request with it gets 401 from now on (within seconds in other API
    processes). Revoking a revoked key is harmless."""
    keys.require_admin(principal)
    keys.revoke(session, keys.get(session, key_id).id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
