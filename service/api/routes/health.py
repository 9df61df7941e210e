"""Liveness and readiness."""

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service import queue
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


@router.get("/readyz")
async def readyz() -> JSONResponse:
    """Ready when the database and the broker answer; 503 otherwise."""
    checks = {
        "database": await run_in_threadpool(_database_ok),
        "broker": await run_in_threadpool(queue.broker_reachable),
    }
    ready = all(checks.values())
    body = {"status": "ready" if ready else "unavailable", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)
