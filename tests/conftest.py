"""Shared fixtures: a migrated database (SQLite by default, PostgreSQL when
DENDRITE_TEST_DATABASE_URL names one), emptied after every test, and settings in a temp dir."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from service.config import Settings, get_settings
from service.db import get_engine, get_sessionmaker, upgrade_database
from service.orm import Base

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("DENDRITE_TEST_DATABASE_URL")
    if not url:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    upgrade_database(url)
    return url


@pytest.fixture(autouse=True)
def settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> Iterator[Settings]:
    monkeypatch.setenv("DENDRITE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DENDRITE_DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()
    with get_engine().begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(text(f"DELETE FROM {table.name}"))


@pytest.fixture
def session() -> Iterator[Session]:
    with get_sessionmaker()() as session:
        yield session
