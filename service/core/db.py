"""The engine and the session factory (with its after-commit queue, `service.core.after_commit`).

SQLite gets WAL and a busy timeout so the API and the worker can share it.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool, QueuePool

from service.core import after_commit, filemodes, sqlite_writes
from service.core.config import get_settings

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        database = make_url(url).database or ""
        in_file = database not in ("", ":memory:") and not database.startswith("file:")
        connect_args = {"timeout": 30, "check_same_thread": False}
        if in_file and Path(database).parent.is_dir():
            # SQLite makes its -wal and -shm files with the database file's mode: 0600 for all.
            filemodes.private_file(Path(database))
            for companion in ("-wal", "-shm"):  # left by an older dendrite
                filemodes.tighten_existing(Path(f"{database}{companion}"))
        # A pool that never makes a request wait for a connection: one waiting for a pooled
        # connection once starved the one holding the write lock until busy_timeout ("database
        # is locked"; tests/behaviour/test_load.py). But a pool, not a fresh connection per session:
        # closing the last connection to a WAL database checkpoints it and deletes its WAL file,
        # and without an idle connection held open every transaction paid that (1.1 ms against
        # 0.09 ms; 4.5 ms for each epoch's write in a worker).
        if "poolclass" not in kwargs:
            if in_file:
                kwargs.update(poolclass=QueuePool, pool_size=8, max_overflow=-1)
            else:
                kwargs["poolclass"] = NullPool
        engine = create_engine(url, connect_args=connect_args, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "before_cursor_execute")
        def _savepoint_in_transaction(
            conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool
        ) -> None:
            # pysqlite begins a transaction before INSERT, UPDATE and DELETE, not before
            # SAVEPOINT; SQLite then makes the savepoint the transaction, and releasing it
            # commits: everything before the rest of the unit of work.
            dbapi_connection = conn.connection.dbapi_connection
            if statement.startswith("SAVEPOINT") and not dbapi_connection.in_transaction:
                dbapi_connection.execute("BEGIN")

        if in_file:
            sqlite_writes.install(engine, Path(f"{database}-writers.lock"), timeout=30)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


@lru_cache
def get_engine() -> Engine:
    settings = get_settings()
    if settings.database_url is None:
        filemodes.private_dir(settings.data_dir, tighten=True)
    return make_engine(settings.sqlalchemy_url)


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    """The one session factory: its sessions run the work queued with `after_commit.after_commit`
    once they commit, and `after_commit.on_rollback`'s if they do not."""
    factory = sessionmaker(bind=get_engine(), expire_on_commit=False)
    after_commit.install(factory)
    return factory


@contextmanager
def session_scope() -> Iterator[Session]:
    """One unit of work: commit on success (then its after-commit work runs), roll back on error."""
    session = get_sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def serialize(session: Session, name: str) -> None:
    """Until the session's transaction ends, other transactions that call this with the same
    `name` wait here: for a decision that must not race (count, then insert).

    PostgreSQL: a transaction-scoped advisory lock on the name's hash. SQLite: the write turn,
    which admits one writer at a time whatever the name.
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        lock = text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))")
        connection.execute(lock, {"name": name})
    elif connection.dialect.name == "sqlite":
        sqlite_writes.take_now(connection)


def alembic_config(url: str | None = None) -> "AlembicConfig":
    from importlib.resources import files

    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(files("migrations")))
    config.set_main_option("sqlalchemy.url", url or get_settings().sqlalchemy_url)
    return config


def upgrade_database(url: str | None = None) -> None:
    """Bring the schema to the newest migration (`dendrite migrate`)."""
    from alembic import command

    if url is None and get_settings().database_url is None:
        filemodes.private_dir(get_settings().data_dir, tighten=True)
    command.upgrade(alembic_config(url), "heads")
