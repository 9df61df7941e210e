"""Fair turns for SQLite writers (embedded mode).

SQLite has one write lock, and a writer that finds it taken polls with growing sleeps (up to 100
ms). Under a steady stream of writers the newest ones, still polling every millisecond or two, keep
winning, and a writer that has waited longest can wait past busy_timeout: "database is locked" (seen
with 50 clients uploading while 2 jobs train, tests/behaviour/test_load.py). So writers queue before
they touch the lock: threads of one process on a lock, processes (API, workers) on an advisory file
lock polled at a steady pace. A transaction takes its turn at its first INSERT, UPDATE or DELETE and
gives it back at commit or rollback."""

import fcntl
import os
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import OperationalError

_DML = ("INSERT", "UPDATE", "DELETE", "REPLACE", "SAVEPOINT")  # a savepoint is for writing


class WriteTurns:
    """One process's place in the queue of writers to one SQLite file."""

    def __init__(self, lock_path: Path, timeout: float) -> None:
        self._lock_path = lock_path
        self._timeout = timeout
        self._threads = threading.Lock()
        self._holder: int | None = None  # id() of the DBAPI connection whose turn it is
        self._file: tuple[int, int] | None = None  # (pid, fd): a child must not share its parent's

    def take(self, connection: Any) -> None:
        if self._holder == id(connection):
            return
        deadline = time.monotonic() + self._timeout
        fd = self._fd()
        if not self._threads.acquire(timeout=self._timeout):
            raise _no_turn(self._timeout)
        try:
            # Polled at a steady pace, not with growing sleeps: among the few processes (the API
            # and the workers, one waiting thread each) the longest waiter keeps its chances.
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise _no_turn(self._timeout) from None
                    time.sleep(0.002)
        except BaseException:
            self._threads.release()
            raise
        self._holder = id(connection)

    def give_back(self, connection: Any) -> None:
        if self._holder != id(connection):
            return
        self._holder = None
        fcntl.flock(self._fd(), fcntl.LOCK_UN)
        self._threads.release()

    def _fd(self) -> int:
        if self._file is None or self._file[0] != os.getpid():
            self._lock_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._file = (os.getpid(), fd)
            # A forked child starts with nobody's turn: its parent's holder is not its own.
            self._holder = None
            self._threads = threading.Lock()
        return self._file[1]


def _no_turn(timeout: float) -> OperationalError:
    reason = f"database is locked: no write turn within {timeout:g} s"
    return OperationalError("take a write turn", None, Exception(reason))


_installed: "weakref.WeakKeyDictionary[Engine, WriteTurns]" = weakref.WeakKeyDictionary()


def take_now(connection: Connection) -> None:
    """Take the write turn for `connection`'s transaction before its first write (a transaction
    that must read what it is about to decide on with no writer in between); it is given back
    when the transaction ends. Nothing happens on an engine without write turns."""
    turns = _installed.get(connection.engine)
    if turns is not None:
        turns.take(connection.connection.dbapi_connection)


def install(engine: Engine, lock_path: Path, timeout: float) -> WriteTurns:
    """Make every write transaction on `engine` wait for its turn (SQLite engines only)."""
    turns = WriteTurns(lock_path, timeout)
    _installed[engine] = turns

    @event.listens_for(engine, "before_cursor_execute")
    def _before_write(
        conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool
    ) -> None:
        if statement.lstrip()[:9].upper().startswith(_DML):
            turns.take(conn.connection.dbapi_connection)

    def _after_end(conn: Any) -> None:
        turns.give_back(conn.connection.dbapi_connection)

    # Engine events fire just before the DBAPI commit or rollback: the next writer may start a
    # moment early and poll briefly, but it is next, and nobody can overtake it.
    event.listen(engine, "commit", _after_end)
    event.listen(engine, "rollback", _after_end)

    @event.listens_for(engine.pool, "reset")
    def _on_reset(dbapi_connection: Any, _record: Any, _state: Any) -> None:
        turns.give_back(dbapi_connection)  # a connection given back without commit or rollback

    @event.listens_for(engine.pool, "close")
    def _on_close(dbapi_connection: Any, _record: Any) -> None:
        turns.give_back(dbapi_connection)

    return turns
