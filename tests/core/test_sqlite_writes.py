"""Write turns for SQLite: one writer at a time, the next waits instead of polling SQLite."""

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from service.core.db import make_engine
from service.core.sqlite_writes import WriteTurns


def test_second_writer_waits_until_the_first_gives_back(tmp_path: Path) -> None:
    turns = WriteTurns(tmp_path / "db-writers.lock", timeout=5)
    first, second = object(), object()
    turns.take(first)
    turns.take(first)  # the same connection again: already its turn
    order: list[str] = []

    def write_second() -> None:
        turns.take(second)
        order.append("second")
        turns.give_back(second)

    thread = threading.Thread(target=write_second)
    thread.start()
    time.sleep(0.2)
    order.append("first")
    turns.give_back(first)
    thread.join(timeout=5)
    assert order == ["first", "second"]


def test_a_turn_never_given_back_is_database_locked_after_the_timeout(tmp_path: Path) -> None:
    turns = WriteTurns(tmp_path / "db-writers.lock", timeout=0.3)
    holder, waiter = object(), object()  # kept alive: turns are told apart by id()
    turns.take(holder)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            turns.take(waiter)
        except OperationalError as error:
            errors.append(error)

    thread = threading.Thread(target=write)
    thread.start()
    thread.join(timeout=5)
    assert len(errors) == 1 and "database is locked" in str(errors[0])


def test_giving_back_a_turn_not_held_changes_nothing(tmp_path: Path) -> None:
    turns = WriteTurns(tmp_path / "db-writers.lock", timeout=0.3)
    holder, other = object(), object()
    turns.take(holder)
    turns.give_back(other)
    with pytest.raises(OperationalError):
        threading_take(turns)
    turns.give_back(holder)
    threading_take(turns)


def threading_take(turns: WriteTurns) -> None:
    """Take and give back a turn from another thread, re-raising what it raised."""
    raised: list[OperationalError] = []
    connection = object()

    def run() -> None:
        try:
            turns.take(connection)
            turns.give_back(connection)
        except OperationalError as error:
            raised.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=5)
    if raised:
        raise raised[0]


def test_a_released_savepoint_commits_nothing_before_the_transaction_does(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'savepoint.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE item (name TEXT)"))
    try:
        with Session(engine) as writer, Session(engine) as reader:
            with writer.begin_nested():  # the transaction's first statement
                writer.execute(text("INSERT INTO item VALUES ('first')"))
            count = text("SELECT count(*) FROM item")
            assert reader.scalar(count) == 0
            writer.rollback()
            assert reader.scalar(count) == 0
    finally:
        engine.dispose()
