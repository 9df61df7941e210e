"""An owner's webhook signing secret: made on first use, replaced by rotation, kept encrypted
(`keyring`), and the signature it makes."""

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.core.orm import WebhookSecret, utcnow
from service.webhooks import keyring

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OwnerSecret:
    secret: str
    created_at: datetime


def secret(session: Session, owner: str) -> OwnerSecret:
    """The owner's signing secret, made on first use; stored encrypted (`keyring`), and stored
    again when it was plain or sealed under an older key.

    Two first uses at once (two submits, say) both find no row; the second insert does nothing,
    and both sign with the secret that was stored (a plain insert was a 500 for the second).
    """
    row = _row(session, owner)
    plaintext, stale = keyring.keyring().decrypt(owner, row.secret)
    if stale:
        row.secret = keyring.keyring().encrypt(owner, plaintext)
        session.flush()
    return OwnerSecret(plaintext, row.created_at)


def rotate(session: Session, owner: str) -> OwnerSecret:
    """A new secret for the owner; the old one signs nothing from now on (and need not be
    readable: this is the way out of a lost DENDRITE_SECRET_KEY)."""
    row = _row(session, owner)
    plaintext = _new_secret()
    row.secret = keyring.keyring().encrypt(owner, plaintext)
    row.created_at = utcnow()
    session.flush()
    return OwnerSecret(plaintext, row.created_at)


def encrypt_stored(session: Session) -> int:
    """Store every plain (or older-key) secret encrypted under the current key; the count."""
    ring, done = keyring.keyring(), 0
    for row in session.scalars(select(WebhookSecret)):
        try:
            plaintext, stale = ring.decrypt(row.owner, row.secret)
        except keyring.SecretUnreadable:
            log.error(
                "the webhook secret of %r cannot be decrypted with DENDRITE_SECRET_KEY", row.owner
            )
            continue
        if stale:
            row.secret = ring.encrypt(row.owner, plaintext)
            done += 1
    session.flush()
    return done


def _row(session: Session, owner: str) -> WebhookSecret:
    row = session.get(WebhookSecret, owner)
    if row is None:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        sealed = keyring.keyring().encrypt(owner, _new_secret())
        values = {"owner": owner, "secret": sealed, "created_at": utcnow()}
        session.execute(
            dialect.insert(WebhookSecret)
            .values(values)
            .on_conflict_do_nothing(index_elements=["owner"])
        )
        row = session.get_one(WebhookSecret, owner)
    return row


def _new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def sign(key: str, timestamp: int, body: bytes) -> str:
    """The X-Dendrite-Signature value: HMAC-SHA256 of '<timestamp>.<body>'."""
    message = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(key.encode(), message, hashlib.sha256).hexdigest()
