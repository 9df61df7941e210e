"""API keys and who a request acts for: create, list, revoke, authenticate.

A key is "dk_" + 43 random URL-safe characters, shown once. Only its SHA-256 is stored: a key is
random, not a password, so a fast hash resists guessing as well as a slow one would.
"""

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import ColumnElement, func, or_, select, true
from sqlalchemy.orm import InstrumentedAttribute, Session

from service.core import errors, orm
from service.core.after_commit import after_commit
from service.core.config import get_settings
from service.core.recent import Recent

KEY_PREFIX = "dk_"
PREFIX_LENGTH = len(KEY_PREFIX) + 8  # what `dendrite keys list` shows; enough to tell keys apart
# Owner names end up in Idempotency-Key scopes ("owner:key"), so no colon, and short.
OWNER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
TOUCH_INTERVAL = timedelta(minutes=1)  # last_used_at is a hint, not an audit log: few writes


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: an owner, and whether it may see every owner's things."""

    owner: str
    is_admin: bool = False

    def can_see(self, owner: str) -> bool:
        return self.is_admin or owner == self.owner

    def visible(self, owner_column: InstrumentedAttribute[str]) -> ColumnElement[bool]:
        """A WHERE clause that keeps the rows this principal may see."""
        return true() if self.is_admin else owner_column == self.owner


# Every request acts as this while authentication is off.
LOCAL = Principal(owner=orm.LOCAL_OWNER, is_admin=True)
# Principals by key digest: a key that authenticated a moment ago is trusted without a database
# round trip (most of a prediction's time otherwise). How stale it may be: `service.core.recent`.
_recent_keys: Recent[str, Principal] = Recent(maxsize=4096)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(session: Session, owner: str, admin: bool = False) -> tuple[orm.ApiKey, str]:
    """A new key for `owner`; returns the row and the key itself, which is not stored."""
    if not OWNER_PATTERN.fullmatch(owner):
        raise errors.InvalidInput(
            f"'{owner}' is not a valid owner name: use 1 to 64 letters, digits and '_.@-', "
            "starting with a letter or digit",
            field="owner",
        )
    token = KEY_PREFIX + secrets.token_urlsafe(32)
    key = orm.ApiKey(
        owner=owner, key_sha256=_digest(token), prefix=token[:PREFIX_LENGTH], is_admin=admin
    )
    session.add(key)
    session.flush()
    return key, token


def page(
    session: Session, limit: int | None = None, offset: int = 0
) -> tuple[list[orm.ApiKey], int]:
    """Keys, oldest first, and the total count."""
    total = session.scalar(select(func.count()).select_from(orm.ApiKey)) or 0
    query = select(orm.ApiKey).order_by(orm.ApiKey.created_at, orm.ApiKey.id)
    return list(session.scalars(query.limit(limit).offset(offset))), total


def revoke(session: Session, id_or_prefix: str) -> orm.ApiKey:
    """Revoke a key named by its id, its prefix or the key itself; revoking twice is harmless."""
    matches = session.scalars(
        select(orm.ApiKey).where(
            or_(
                orm.ApiKey.id == id_or_prefix,
                orm.ApiKey.prefix == id_or_prefix,
                orm.ApiKey.key_sha256 == _digest(id_or_prefix),
            )
        )
    ).all()
    if not matches:
        raise errors.NotFound(f"no API key has the id or prefix '{id_or_prefix}'", field="key")
    if len(matches) > 1:
        raise errors.Conflict(
            f"{len(matches)} keys have the prefix '{id_or_prefix}'; revoke one by its id",
            field="key",
        )
    key = matches[0]
    if key.revoked_at is None:
        key.revoked_at = orm.utcnow()
        session.flush()
    after_commit(session, partial(_recent_keys.forget, key.key_sha256))  # at once in this process
    return key


def recent(token: str | None) -> Principal | None:
    """The principal `token` authenticated as a moment ago (`service.core.recent`), if it did."""
    return _recent_keys.get(_digest(token)) if token else None


def remember(token: str, principal: Principal) -> None:
    """Trust `token` as `principal` without a lookup for the next moment (`recent`)."""
    _recent_keys.put(_digest(token), principal)


def authenticate(session: Session, token: str | None, now: datetime | None = None) -> Principal:
    """The principal a key acts for; 401 for a missing, unknown or revoked key."""
    if not token:
        raise errors.Unauthorized(
            "this endpoint needs an API key: send the header 'Authorization: Bearer <key>' "
            "(an operator creates keys with `dendrite keys create NAME`)"
        )
    digest = _digest(token)
    # Looking up the hash leaks nothing useful about the key through timing.
    key = session.scalar(select(orm.ApiKey).where(orm.ApiKey.key_sha256 == digest))
    if key is None or not hmac.compare_digest(key.key_sha256, digest):
        raise errors.Unauthorized(
            "the API key is not valid; check that it was copied whole, or ask for a new one"
        )
    if key.revoked_at is not None:
        raise errors.Unauthorized(
            f"the API key {key.prefix}... was revoked; ask for a new one "
            "(`dendrite keys create NAME`)"
        )
    now = now or orm.utcnow()
    if key.last_used_at is None or now - key.last_used_at >= TOUCH_INTERVAL:
        key.last_used_at = now
        session.flush()
    return Principal(owner=key.owner, is_admin=key.is_admin)


def require_admin(principal: Principal) -> None:
    """`errors.Forbidden` unless `principal` is an admin."""
    if not principal.is_admin:
        raise errors.Forbidden(
            "only an admin key may manage API keys; ask an admin (or the operator: "
            "`dendrite keys create NAME --admin`)"
        )


def get(session: Session, key_id: str) -> orm.ApiKey:
    """A key by its id."""
    key = session.get(orm.ApiKey, key_id)
    if key is None:
        raise errors.NotFound(f"no API key has the id '{key_id}'", field="key_id")
    return key


# The web console's sessions. A cookie names a key by id and is signed with that key's stored
# digest: only someone who held the key (or the database) can make one, revoking the key ends
# every session it opened, and neither the key nor its digest is in the cookie. Nothing is stored.
SESSION_LIFETIME = timedelta(hours=12)
# Without authentication every session is the local admin's, signed with this process's secret.
_LOCAL_SECRET = secrets.token_hex(32)


@dataclass(frozen=True)
class ConsoleSession:
    """A signed-in console: who it acts for and the token its forms carry (CSRF)."""

    principal: Principal
    csrf_token: str


def _sign(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def open_session(session: Session, token: str | None, now: datetime | None = None) -> str:
    """Sign in to the console with a key (`authenticate`); returns the session cookie's value."""
    now = now or orm.utcnow()
    if token is None and not get_settings().auth_enabled:
        key_id, secret = "local", _LOCAL_SECRET
    else:
        authenticate(session, token, now)
        key = session.scalar(
            select(orm.ApiKey).where(orm.ApiKey.key_sha256 == _digest(token or ""))
        )
        assert key is not None  # authenticate found it
        key_id, secret = key.id, key.key_sha256
    message = f"{key_id}.{int(now.timestamp())}.{secrets.token_urlsafe(16)}"
    return f"{message}.{_sign(secret, message)}"


def resume_session(
    session: Session, cookie: str | None, now: datetime | None = None
) -> ConsoleSession:
    """The console session a cookie holds; `errors.Unauthorized` when it is missing, forged,
    expired, or its key was revoked."""
    expired = errors.Unauthorized("sign in to the console with an API key")
    parts = (cookie or "").split(".")
    if len(parts) != 4 or not parts[1].isdigit():
        raise expired
    key_id, issued, _, mac = parts
    now = now or orm.utcnow()
    if now.timestamp() - int(issued) > SESSION_LIFETIME.total_seconds():
        raise expired
    if key_id == "local" and not get_settings().auth_enabled:
        secret, principal = _LOCAL_SECRET, LOCAL
    else:
        key = session.get(orm.ApiKey, key_id)
        if key is None or key.revoked_at is not None:
            raise expired
        secret, principal = key.key_sha256, Principal(owner=key.owner, is_admin=key.is_admin)
    message = ".".join(parts[:3])
    if not hmac.compare_digest(mac, _sign(secret, message)):
        raise expired
    return ConsoleSession(principal, csrf_token=_sign(secret, "csrf." + message))
