"""Liveness and readiness."""

import os
from collections.abc import Callable
from pathlib import Path

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import make_url, text

from service.core import queue, storage
from service.core.config import get_settings
from service.core.db import get_engine

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


def _local_folders() -> dict[str, Path]:
    """The local folders dendrite writes to, by what they hold: a local artifact store, the
    SQLite database's folder and the embedded broker's."""
    settings = get_settings()
    folders: dict[str, Path] = {}
    root = storage.local_root()
    if root is not None:
        folders["the artifact store"] = root
    url = make_url(settings.sqlalchemy_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        folders["the SQLite database"] = Path(url.database).resolve().parent
    if settings.embedded_broker:
        folders["the embedded broker"] = settings.broker_dir
    return folders


def _low_space() -> str | None:
    """What lacks free space (DENDRITE_MIN_FREE_BYTES), or None: each filesystem once."""
    minimum = get_settings().min_free_bytes
    if minimum == 0:
        return None
    problems: list[str] = []
    seen: dict[int, str] = {}
    try:
        folders = _local_folders()
    except Exception:  # noqa: BLE001 - a store that cannot be opened fails the artifacts check
        folders = {}
    for what, folder in folders.items():
        try:
            existing = next(f for f in (folder, *folder.parents) if f.exists())
            device = os.stat(existing).st_dev
            free = storage.free_bytes(existing)
        except OSError as error:
            problems.append(f"the free space of {what} could not be measured ({error.strerror})")
            continue
        if device in seen:
            continue
        seen[device] = what
        if free < minimum:
            problems.append(
                f"{what} has {storage.human(free)} free, less than DENDRITE_MIN_FREE_BYTES "
                f"({storage.human(minimum)})"
            )
    if not problems:
        return None
    return f"{'; '.join(problems)}. Free space there: once it runs out, writes answer 507"


CHECK_SECONDS = 5.0


async def _check(probe: Callable[[], bool]) -> bool:
    """`probe` on a thread; a probe that has not answered within CHECK_SECONDS is a failure."""
    with anyio.move_on_after(CHECK_SECONDS):
        return await anyio.to_thread.run_sync(probe, abandon_on_cancel=True)
    return False


@router.get("/readyz")
async def readyz() -> JSONResponse:
    """Ready when the database, the broker and the artifact store answer and the local disks
    have DENDRITE_MIN_FREE_BYTES free; 503 otherwise, `details` saying what failed."""
    low_space: str | None = "the free space could not be measured in time"
    with anyio.move_on_after(CHECK_SECONDS):
        low_space = await anyio.to_thread.run_sync(_low_space, abandon_on_cancel=True)
    checks = {
        "database": await _check(_database_ok),
        "broker": await _check(queue.broker_reachable),
        "artifacts": await _check(storage.reachable),
        "free_space": low_space is None,
    }
    details = {"free_space": low_space} if low_space is not None else {}
    ready = all(checks.values())
    body = {"status": "ready" if ready else "unavailable", "checks": checks, "details": details}
    return JSONResponse(body, status_code=200 if ready else 503)
