"""Liveness and readiness."""

from collections.abc import Callable

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service import queue, storage
from service.db import get_engine

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


def _database_ok() -> bool:
    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False


CHECK_SECONDS = 5.0


async def _check(probe: Callable[[], bool]) -> bool:
    """`probe` on a thread; a probe that has not answered within CHECK_SECONDS is a failure."""
    with anyio.move_on_after(CHECK_SECONDS):
        return await anyio.to_thread.run_sync(probe, abandon_on_cancel=True)
    return False


@router.get("/readyz")
async def readyz() -> JSONResponse:
    """Ready when the database, the broker and the artifact store answer; 503 otherwise."""
    checks = {
        "database": await _check(_database_ok),
        "broker": await _check(queue.broker_reachable),
        "artifacts": await _check(storage.reachable),
    }
    ready = all(checks.values())
    body = {"status": "ready" if ready else "unavailable", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)
