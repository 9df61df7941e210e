"""Dependencies shared by the routers."""

import functools
import inspect
from collections.abc import AsyncIterator, Callable
from functools import lru_cache
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service import keys
from service.core.config import get_settings
from service.core.db import get_sessionmaker, session_scope
from service.keys import Principal
from service.schemas.common import ErrorBody


@lru_cache
def _session_ends() -> anyio.CapacityLimiter:
    return anyio.CapacityLimiter(16)


async def get_session() -> AsyncIterator[Session]:
    """One unit of work per request: commit when the handler returns, roll back if it raises.
    The session comes from the one factory, so the work its use cases queued with
    `service.core.after_commit` runs on that commit (or that rollback).

    A handler on a `UnitOfWorkRoute` has already committed or rolled back on its own thread (see
    there); what is left here is closing, and the commit of any other handler.
    """
    session = get_sessionmaker()()
    try:
        yield session
        await _end(session.commit)
    except BaseException:
        await _end(session.rollback)
        raise
    finally:
        await _end(session.close)


async def _end(step: Callable[[], None]) -> None:
    # Shielded: a client that disconnects cancels its request, and an unfinished commit or
    # rollback would leave the transaction (and SQLite's write lock) open.
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(step, limiter=_session_ends())


class UnitOfWorkRoute(APIRoute):
    """A route whose plain (`def`) handler commits its session, or rolls it back, on the handler's
    own thread, before the handler's thread goes back to the pool.

    A write transaction holds SQLite's single write turn (`service.core.sqlite_writes`) from its
    first INSERT until it ends. Ended later, after the handler returns, it held the turn while
    FastAPI validated the response on a thread from the same pool (40 threads) where other handlers
    waited for that turn: with 40 such waiters, nothing moved until the 30 s timeout ("database
    is locked", found by tests/behaviour/test_load.py). Ended on the handler's thread, a turn never
    waits for a thread.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, _ends_own_transaction(endpoint), **kwargs)


def _ends_own_transaction(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(endpoint):
        return endpoint  # async handlers open their own short units of work

    @functools.wraps(endpoint)
    def handler(*args: Any, **kwargs: Any) -> Any:
        sessions = [value for value in kwargs.values() if isinstance(value, Session)]
        try:
            result = endpoint(*args, **kwargs)
            for session in sessions:
                session.commit()
        except BaseException:
            for session in sessions:
                session.rollback()
            raise
        return result

    return handler


# scope="function": commit before the response is sent, so a client that reads right after a 2xx
# finds what it created, and a failed commit is the error response rather than a silent loss.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
# Bounded: the database takes a 64-bit integer at most (a larger one was a 500, found by fuzzing).
Offset = Annotated[int, Query(ge=0, le=2**31 - 1, description="Items to skip.")]

# auto_error=False: a missing key gets dendrite's 401 envelope, not FastAPI's own error. The
# scheme is what makes the Swagger UI show its "Authorize" button.
bearer = HTTPBearer(
    auto_error=False,
    description="An API key from `dendrite keys create NAME`: `Authorization: Bearer <key>`.",
)


async def get_principal(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """Who the request acts for; 401 without a valid key (everyone is the local admin when
    authentication is off). Its own short unit of work: recording a key's last use never holds a
    write lock for the rest of the request. A key seen in the last seconds needs no database
    (`keys.recent`), nor a thread."""
    if not get_settings().auth_enabled:
        return keys.LOCAL
    return await principal_for(credentials.credentials if credentials else None)


async def principal_for(token: str | None) -> Principal:
    """The principal a bearer token acts for; `errors.Unauthorized` if none."""
    principal = keys.recent(token)
    if principal is None:
        principal = await anyio.to_thread.run_sync(_authenticate, token)
    return principal


def _authenticate(token: str | None) -> Principal:
    with session_scope() as session:
        principal = keys.authenticate(session, token)
    if token:
        keys.remember(token, principal)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
# For the OpenAPI document of every router whose operations need a key.
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No API key, or one that is unknown or revoked."}
}


def v1_router(prefix: str, tag: str, *, documents_401: bool = True) -> APIRouter:
    """A router of `/v1` operations. Its handlers end their own transactions (`UnitOfWorkRoute`),
    and each operation documents the 401 (unless `documents_401` is False: then those that need
    a key say so themselves)."""
    return APIRouter(
        prefix=prefix,
        tags=[tag],
        responses=AUTH_RESPONSES if documents_401 else None,
        route_class=UnitOfWorkRoute,
    )
