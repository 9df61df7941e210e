"""Work that follows the transaction: run once it commits, or to undo what it did if it does not.

Use cases flush and never commit, so work that must wait until their rows are committed (sending
a task, deleting a file) is queued with `after_commit`, and work done ahead of the commit that must
not outlive a rollback (a file stored before its row) is undone with `on_rollback`. The session
factory (`service.core.db.get_sessionmaker`) gives every session it makes this queue (`install`):

- the transaction commits: the `after_commit` actions run, in the order queued;
- it rolls back, or the session closes without committing: the `on_rollback` actions run, in order;
- a savepoint (`begin_nested`) released: what was queued inside it waits for the transaction;
  rolled back: its own `on_rollback` actions run and its `after_commit` actions are dropped, while
  what was queued outside it stays.

An action that raises is logged and the others still run: the transaction has already ended, so
its outcome stands (a committed job stays queued and is sent again by `service.recovery`; a file
left behind costs only space). Actions run once the transaction is over: they must not use the
session.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

log = logging.getLogger(__name__)

Action = Callable[[], object]
_INSTALLED, _QUEUE = "dendrite.after_commit.installed", "dendrite.after_commit.queue"


@dataclass(frozen=True, eq=False)
class _Queued:
    scope: SessionTransaction  # the innermost transaction (or savepoint) it was queued in
    action: Action
    on_commit: bool  # True: run after the commit; False: run on rollback


def install(factory: sessionmaker[Session]) -> None:
    """Give every session that `factory` makes the queue of `after_commit` and `on_rollback`."""
    event.listen(factory, "after_commit", _committed)
    event.listen(factory, "after_soft_rollback", _rolled_back)
    event.listen(factory, "after_transaction_end", _ended)
    factory.configure(info={**factory.kw.get("info", {}), _INSTALLED: True})


def after_commit(session: Session, action: Action) -> None:
    """Run `action` once the session's transaction has committed; never if it rolls back."""
    _queue(session).append(_Queued(_innermost(session), action, on_commit=True))


def on_rollback(session: Session, action: Action) -> None:
    """Run `action` if the session's transaction (or the savepoint in progress) rolls back, or
    the session closes without committing; never once it has committed."""
    _queue(session).append(_Queued(_innermost(session), action, on_commit=False))


def _queue(session: Session) -> list[_Queued]:
    if not session.info.get(_INSTALLED):
        raise RuntimeError(
            "this session was not made by service.core.db.get_sessionmaker(): "
            "work queued on it would never run"
        )
    queue: list[_Queued] = session.info.setdefault(_QUEUE, [])
    return queue


def _innermost(session: Session) -> SessionTransaction:
    return session.get_nested_transaction() or session.get_transaction() or session.begin()


def _committed(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: its work now waits for the enclosing transaction
    _run(_take(session, None), on_commit=True)


def _rolled_back(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:  # the whole transaction's rollback is `_ended`'s
        _run(_take(session, transaction), on_commit=False)


def _ended(session: Session, transaction: SessionTransaction) -> None:
    # After a commit `_committed` has taken everything; what is left here was never committed.
    if transaction.parent is None:
        _run(_take(session, None), on_commit=False)


def _take(session: Session, ended: SessionTransaction | None) -> list[_Queued]:
    """Remove and return what was queued inside `ended` (None: the whole transaction)."""
    kept: list[_Queued] = []
    taken: list[_Queued] = []
    for queued in session.info.get(_QUEUE, []):
        (taken if ended is None or _inside(queued.scope, ended) else kept).append(queued)
    session.info[_QUEUE] = kept
    return taken


def _inside(scope: SessionTransaction | None, ended: SessionTransaction) -> bool:
    """Whether `scope` is `ended` or a savepoint within it."""
    while scope is not None:
        if scope is ended:
            return True
        scope = scope.parent
    return False


def _run(queued: list[_Queued], on_commit: bool) -> None:
    for item in queued:
        if item.on_commit is on_commit:
            try:
                item.action()
            except Exception:  # the transaction has ended: one failure must not skip the rest
                when = "after commit" if on_commit else "on rollback"
                log.exception("an action queued to run %s failed: %r", when, item.action)
