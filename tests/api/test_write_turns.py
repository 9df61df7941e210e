"""Handlers end their write transactions on their own threads (service.api.deps.UnitOfWorkRoute).

With SQLite, a write transaction holds the single write turn until it ends. Ended after the
handler returned, it held the turn while FastAPI validated the response on a pooled thread, and
the pool could be full of handlers waiting for that turn: nothing moved until the 30 s timeout.
Here the pool has 2 threads and 6 uploads arrive at once, so every upload but the first waits
for the turn on a pooled thread.
"""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from service.api.deps import UnitOfWorkRoute, get_session
from service.core import queue
from service.core.config import Settings
from service.core.db import get_engine, get_sessionmaker, upgrade_database
from service.main import create_app
from tests.api.conftest import OWNER, bearer, create_key

UPLOADS = 6


@pytest.fixture
def sqlite_file(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """This test's own SQLite file (the test database may be PostgreSQL), with write turns."""
    url = f"sqlite:///{tmp_path / 'turns.db'}"
    upgrade_database(url)
    monkeypatch.setattr(settings, "database_url", url)
    get_engine().dispose()  # the test database's engine; a new one is made after this test
    get_engine.cache_clear()
    get_sessionmaker.cache_clear()
    yield
    get_engine().dispose()
    get_engine.cache_clear()
    get_sessionmaker.cache_clear()


class TwoThreads:
    """The app, with the event loop's default thread pool cut to 2 threads."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 2
        await self.app(scope, receive, send)


@pytest.mark.usefixtures("sqlite_file")
def test_uploads_waiting_for_the_write_turn_on_every_pooled_thread_all_succeed() -> None:
    queue.celery.cache_clear()
    headers = bearer(create_key(OWNER))
    with TestClient(TwoThreads(create_app()), raise_server_exceptions=False) as client:

        def upload(number: int) -> int:
            content = f"a,b\n{number},{number * 2}\n".encode()
            files = {"file": (f"d{number}.csv", content, "text/csv")}
            return client.post("/v1/datasets", files=files, headers=headers).status_code

        with ThreadPoolExecutor(UPLOADS) as pool:
            codes = list(pool.map(upload, range(UPLOADS)))
        listed = client.get("/v1/datasets", headers=headers).json()
    queue.celery.cache_clear()
    assert codes == [201] * UPLOADS
    assert listed["total"] == UPLOADS


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):  # FastAPI's record of an included router
            yield from _api_routes(route.original_router.routes)


def test_every_route_with_a_session_ends_its_transaction_on_its_own_thread() -> None:
    with_session = [
        route
        for route in _api_routes(create_app().routes)
        if any(dependency.call is get_session for dependency in route.dependant.dependencies)
    ]
    assert len(with_session) > 20  # the check below checks something
    assert [r.path for r in with_session if not isinstance(r, UnitOfWorkRoute)] == []
