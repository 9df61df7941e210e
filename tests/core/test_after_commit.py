"""The after-commit queue on the factory's sessions: work that waits for the commit, work that
undoes a rollback, savepoints, and failing actions."""

import logging
from functools import partial

import pytest
from sqlalchemy.orm import Session

from service import keys
from service.core import orm
from service.core.after_commit import after_commit, on_rollback
from service.core.db import get_engine, get_sessionmaker


class Boom(Exception):
    pass


def test_after_commit_actions_run_in_order_once_the_rows_are_committed(session: Session) -> None:
    key, _ = keys.create(session, "ada")
    seen: list[object] = []

    def committed_elsewhere() -> None:
        with get_sessionmaker()() as other:
            seen.append(other.get(orm.ApiKey, key.id) is not None)

    after_commit(session, committed_elsewhere)
    after_commit(session, partial(seen.append, "second"))
    after_commit(session, partial(seen.append, "third"))
    session.flush()
    assert seen == []

    session.commit()

    assert seen == [True, "second", "third"]


def test_rollback_runs_the_rollback_actions_in_order_and_never_the_commit_ones(
    session: Session,
) -> None:
    keys.create(session, "ada")
    ran: list[str] = []
    after_commit(session, partial(ran.append, "send"))
    on_rollback(session, partial(ran.append, "undo one"))
    on_rollback(session, partial(ran.append, "undo two"))

    session.rollback()
    session.commit()  # a later transaction finds nothing left over

    assert ran == ["undo one", "undo two"]


def test_commit_drops_the_rollback_actions(session: Session) -> None:
    ran: list[str] = []
    on_rollback(session, partial(ran.append, "undo"))

    session.commit()
    session.rollback()

    assert ran == []


def test_closing_without_a_commit_runs_the_rollback_actions() -> None:
    ran: list[str] = []
    with get_sessionmaker()() as session:
        keys.create(session, "ada")
        after_commit(session, partial(ran.append, "send"))
        on_rollback(session, partial(ran.append, "undo"))

    assert ran == ["undo"]


def test_a_failing_action_is_logged_and_the_others_still_run(
    session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []

    def fail() -> None:
        raise Boom("the broker is down")

    after_commit(session, fail)
    after_commit(session, partial(ran.append, "next"))

    with caplog.at_level(logging.ERROR, logger="service.core.after_commit"):
        session.commit()  # committed all the same: no exception

    assert ran == ["next"]
    assert "failed" in caplog.text and "the broker is down" in caplog.text


def test_a_released_savepoint_leaves_its_work_to_the_transaction(session: Session) -> None:
    ran: list[str] = []
    with session.begin_nested():
        keys.create(session, "ada")
        after_commit(session, partial(ran.append, "send"))
        on_rollback(session, partial(ran.append, "undo"))
    assert ran == []

    session.rollback()

    assert ran == ["undo"]


def test_a_rolled_back_savepoint_undoes_only_its_own_work(session: Session) -> None:
    ran: list[str] = []
    keys.create(session, "ada")
    after_commit(session, partial(ran.append, "outer send"))
    on_rollback(session, partial(ran.append, "outer undo"))

    with pytest.raises(Boom), session.begin_nested():
        keys.create(session, "bea")
        after_commit(session, partial(ran.append, "inner send"))
        on_rollback(session, partial(ran.append, "inner undo"))
        raise Boom
    assert ran == ["inner undo"]

    session.commit()

    assert ran == ["inner undo", "outer send"]


def test_a_session_from_another_factory_is_refused() -> None:
    with Session(get_engine()) as session, pytest.raises(RuntimeError, match="never run"):
        after_commit(session, lambda: None)
