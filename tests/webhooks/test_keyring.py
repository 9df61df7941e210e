"""Webhook secrets at rest: encrypted in the database (read here from the raw column), bound to
their owner, still readable when stored before encryption or under an older key, and the key file
embedded mode makes once."""

import stat
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from service import webhooks
from service.core.config import Settings, get_settings
from service.webhooks import keyring

KEY = keyring.new_key()
OLD_KEY = keyring.new_key()


def _raw(session: Session, owner: str) -> str:
    query = text("SELECT secret FROM webhook_secret WHERE owner = :owner")
    return str(session.execute(query, {"owner": owner}).scalar_one())


def _use_key(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("DENDRITE_SECRET_KEY", value)
    get_settings.cache_clear()


def test_a_secret_is_stored_encrypted_and_signs_as_before(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_key(monkeypatch, KEY)
    made = webhooks.secret(session, "alice").secret
    session.commit()
    stored = _raw(session, "alice")
    assert made.startswith("whsec_") and made not in stored and stored.startswith("enc1:")
    assert len(stored) <= 128  # the column's size
    assert webhooks.secret(session, "alice").secret == made
    # (Receivers verify with the plain secret: tests/webhooks/test_outbox.py, a real receiver.)


def test_a_secret_copied_to_another_owners_row_does_not_decrypt(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_key(monkeypatch, KEY)
    webhooks.secret(session, "alice")
    webhooks.secret(session, "mallory")
    session.execute(
        text("UPDATE webhook_secret SET secret = :s WHERE owner = 'mallory'"),
        {"s": _raw(session, "alice")},
    )
    session.expire_all()
    with pytest.raises(keyring.SecretUnreadable):
        webhooks.secret(session, "mallory")


def test_a_plain_secret_from_before_keeps_working_and_is_encrypted_on_read(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_key(monkeypatch, KEY)
    session.execute(
        text(
            "INSERT INTO webhook_secret (owner, secret, created_at) "
            "VALUES ('alice', 'whsec_plain', CURRENT_TIMESTAMP), "
            "('bob', 'whsec_bobs', CURRENT_TIMESTAMP)"
        )
    )
    session.commit()
    assert webhooks.secret(session, "alice").secret == "whsec_plain"
    session.commit()
    assert _raw(session, "alice").startswith("enc1:")
    # The startup pass encrypts the ones nobody read yet.
    assert webhooks.encrypt_stored(session) == 1
    session.commit()
    assert _raw(session, "bob").startswith("enc1:")
    assert webhooks.secret(session, "bob").secret == "whsec_bobs"


def test_rotating_the_key_keeps_secrets_readable_and_moves_them_to_the_new_key(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_key(monkeypatch, OLD_KEY)
    made = webhooks.secret(session, "alice").secret
    session.commit()
    under_old = _raw(session, "alice")
    _use_key(monkeypatch, f"{KEY},{OLD_KEY}")
    assert webhooks.secret(session, "alice").secret == made
    session.commit()
    assert _raw(session, "alice") != under_old
    _use_key(monkeypatch, KEY)  # the old key retired
    assert webhooks.secret(session, "alice").secret == made


def test_a_lost_key_is_a_clear_error_and_rotating_the_secret_recovers(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_key(monkeypatch, OLD_KEY)
    webhooks.secret(session, "alice")
    session.commit()
    _use_key(monkeypatch, KEY)
    with pytest.raises(keyring.SecretUnreadable) as raised:
        webhooks.secret(session, "alice")
    assert raised.value.status_code == 503 and "rotate" in raised.value.detail
    fresh = webhooks.rotate(session, "alice").secret
    assert webhooks.secret(session, "alice").secret == fresh


def test_without_a_key_embedded_mode_makes_one_key_file_readable_by_its_owner_only(
    session: Session, settings: Settings
) -> None:
    made = webhooks.secret(session, "alice").secret
    session.commit()
    path = Path(settings.data_dir) / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_text()
    # Another process finds the file and uses its key; nothing is left behind.
    assert (
        keyring.Keyring((keyring.key_file(path.parent),)).decrypt("alice", _raw(session, "alice"))[
            0
        ]
        == made
    )
    assert path.read_text() == key and sorted(p.name for p in path.parent.glob("*secret*")) == [
        "secret.key"
    ]
    assert _raw(session, "alice").startswith("enc1:")


@pytest.mark.parametrize("value", ["short", "x" * 60, "not base64 !!!"])
def test_a_malformed_key_setting_is_refused_at_startup(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("DENDRITE_SECRET_KEY", value)
    with pytest.raises(ValueError, match="32 random bytes"):
        Settings()
