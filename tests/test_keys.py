"""API keys: create, list, revoke, authenticate; and what a principal may see."""

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from service import keys
from service.core import errors, orm


def test_create_stores_only_the_hash_and_a_prefix(session: Session) -> None:
    key, token = keys.create(session, "alice")

    assert token.startswith("dk_") and len(token) >= 40
    assert key.key_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert token.startswith(key.prefix) and len(key.prefix) < len(token) // 2
    stored = session.execute(select(orm.ApiKey.__table__)).one()
    assert token not in [str(value) for value in stored]
    assert key.owner == "alice" and not key.is_admin and key.revoked_at is None


def test_create_makes_a_different_key_each_time(session: Session) -> None:
    tokens = {keys.create(session, "alice")[1] for _ in range(5)}

    assert len(tokens) == 5


@pytest.mark.parametrize("owner", ["", "a:b", "has space", "-dash-first", "x" * 65])
def test_create_rejects_a_bad_owner_name(session: Session, owner: str) -> None:
    with pytest.raises(errors.InvalidInput, match="not a valid owner name"):
        keys.create(session, owner)


def test_authenticate_returns_the_keys_owner(session: Session) -> None:
    _, token = keys.create(session, "alice")
    _, admin_token = keys.create(session, "root", admin=True)

    assert keys.authenticate(session, token) == keys.Principal("alice", is_admin=False)
    assert keys.authenticate(session, admin_token) == keys.Principal("root", is_admin=True)


@pytest.mark.parametrize("token", [None, "", "dk_not-a-key", "Bearer dk_x"])
def test_authenticate_rejects_missing_or_unknown_key(session: Session, token: str | None) -> None:
    keys.create(session, "alice")

    with pytest.raises(errors.Unauthorized) as caught:
        keys.authenticate(session, token)

    assert caught.value.status_code == 401
    assert caught.value.headers == {"WWW-Authenticate": "Bearer"}


def test_authenticate_rejects_a_revoked_key(session: Session) -> None:
    key, token = keys.create(session, "alice")
    keys.revoke(session, key.id)

    with pytest.raises(errors.Unauthorized, match="revoked"):
        keys.authenticate(session, token)


def test_authenticate_records_last_use_at_most_once_a_minute(session: Session) -> None:
    key, token = keys.create(session, "alice")
    start = orm.utcnow()

    keys.authenticate(session, token, now=start)
    keys.authenticate(session, token, now=start + timedelta(seconds=30))
    assert key.last_used_at == start
    keys.authenticate(session, token, now=start + timedelta(seconds=61))
    assert key.last_used_at == start + timedelta(seconds=61)


@pytest.mark.parametrize("by", ["id", "prefix", "key"])
def test_revoke_finds_the_key_by_id_prefix_or_key(session: Session, by: str) -> None:
    key, token = keys.create(session, "alice")
    other, _ = keys.create(session, "bob")

    revoked = keys.revoke(session, {"id": key.id, "prefix": key.prefix, "key": token}[by])

    assert revoked is key and key.revoked_at is not None
    assert other.revoked_at is None


@pytest.mark.parametrize("by", ["id", "prefix", "key"])
def test_revoke_forgets_the_remembered_key_once_committed(session: Session, by: str) -> None:
    key, token = keys.create(session, "alice")
    _, other = keys.create(session, "bob")
    keys.remember(token, keys.Principal(owner="alice"))
    keys.remember(other, keys.Principal(owner="bob"))

    keys.revoke(session, {"id": key.id, "prefix": key.prefix, "key": token}[by])
    session.commit()

    assert keys.recent(token) is None
    assert keys.recent(other) == keys.Principal(owner="bob")


def test_revoke_rolled_back_keeps_the_remembered_key(session: Session) -> None:
    key, token = keys.create(session, "alice")
    session.commit()
    keys.remember(token, keys.Principal(owner="alice"))

    keys.revoke(session, key.id)
    session.rollback()

    assert keys.recent(token) == keys.Principal(owner="alice")


def test_revoke_twice_keeps_the_first_time(session: Session) -> None:
    key, _ = keys.create(session, "alice")
    first = keys.revoke(session, key.id).revoked_at

    assert keys.revoke(session, key.prefix).revoked_at == first


def test_revoke_unknown_key_raises_not_found(session: Session) -> None:
    with pytest.raises(errors.NotFound, match="no API key"):
        keys.revoke(session, "dk_nothing")


def test_revoke_ambiguous_prefix_raises_conflict(session: Session) -> None:
    first, _ = keys.create(session, "alice")
    second, _ = keys.create(session, "bob")
    second.prefix = first.prefix
    session.flush()

    with pytest.raises(errors.Conflict, match="by its id"):
        keys.revoke(session, first.prefix)
    assert first.revoked_at is None and second.revoked_at is None


def test_page_lists_keys_oldest_first(session: Session) -> None:
    created = [keys.create(session, f"owner{i}")[0] for i in range(3)]

    items, total = keys.page(session, limit=2)

    assert total == 3 and items == created[:2]


def test_can_see_only_own_owner_unless_admin() -> None:
    alice, admin = keys.Principal("alice"), keys.Principal("root", is_admin=True)

    assert alice.can_see("alice") and not alice.can_see("bob")
    assert admin.can_see("bob") and keys.LOCAL.can_see("anyone")
