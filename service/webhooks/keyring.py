"""Webhook secrets at rest: AES-256-GCM under DENDRITE_SECRET_KEY, bound to their owner (a stored
secret copied to another owner's row does not decrypt). Without that setting, a key is generated
once into DATA_DIR/secret.key (mode 0600): right for embedded mode, where one machine holds the
database too. GCM rather than Fernet because a Fernet token of a secret (164 characters) would not
fit the column (128), and this one (108) needs no migration.
"""

import base64
import binascii
import logging
import os
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from service.core.config import get_settings
from service.core.errors import DendriteError

log = logging.getLogger(__name__)

PREFIX = "enc1:"  # what a stored secret starts with once encrypted; plain ones start "whsec_"
KEY_FILE = "secret.key"
NONCE_BYTES = 12


class SecretUnreadable(DendriteError):
    status_code = 503
    kind = "secret_unreadable"

    def __init__(self) -> None:
        super().__init__(
            "your webhook secret was stored under another DENDRITE_SECRET_KEY than this server "
            "has: the operator must restore that key (a list of keys decrypts with each), or make "
            "a new secret with POST /v1/webhooks/secret/rotate"
        )


@dataclass(frozen=True)
class Keyring:
    """The keys: the first encrypts, each one decrypts (rotation: put the new key first)."""

    keys: tuple[bytes, ...]

    def encrypt(self, owner: str, plaintext: str) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(self.keys[0]).encrypt(nonce, plaintext.encode(), owner.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def decrypt(self, owner: str, stored: str) -> tuple[str, bool]:
        """The plaintext, and whether it should be stored again (it was plain, or sealed under
        an older key)."""
        if not stored.startswith(PREFIX):
            return stored, True  # written before encryption at rest
        try:
            packed = _b64decode(stored.removeprefix(PREFIX))
        except (binascii.Error, ValueError):
            raise SecretUnreadable() from None
        nonce, sealed = packed[:NONCE_BYTES], packed[NONCE_BYTES:]
        for index, key in enumerate(self.keys):
            try:
                plaintext = AESGCM(key).decrypt(nonce, sealed, owner.encode())
            except (InvalidTag, ValueError):
                continue
            return plaintext.decode(), index > 0
        raise SecretUnreadable()


def keyring() -> Keyring:
    settings = get_settings()
    configured = settings.secret_key.get_secret_value() if settings.secret_key else None
    stack = not settings.sqlalchemy_url.startswith("sqlite")
    return _keyring(configured, settings.data_dir.resolve(), stack)


@lru_cache(maxsize=8)
def _keyring(configured: str | None, data_dir: Path, stack: bool) -> Keyring:
    if configured:
        return Keyring(tuple(parse_key(part) for part in configured.split(",") if part.strip()))
    if stack:
        log.warning(
            "DENDRITE_SECRET_KEY is not set: webhook secrets are encrypted under a key kept in "
            "%s. Set DENDRITE_SECRET_KEY, the same on every API replica: a key that is lost "
            "(a new container) or differs leaves the stored secrets unreadable.",
            data_dir / KEY_FILE,
        )
    return Keyring((key_file(data_dir),))


def parse_key(text: str) -> bytes:
    """A key as the setting holds it: 32 bytes in base64 (standard or URL-safe, padded or not)."""
    try:
        key = _b64decode(text.strip().replace("+", "-").replace("/", "_"))
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise ValueError(
            "DENDRITE_SECRET_KEY must be 32 random bytes in base64, e.g. the output of "
            '`python -c "import secrets; print(secrets.token_urlsafe(32))"`'
        )
    return key


def new_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def key_file(data_dir: Path) -> bytes:
    """DATA_DIR/secret.key, made once (0600); several processes starting at once agree on it."""
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        draft = data_dir / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(new_key() + "\n")
        try:
            os.link(draft, path)  # atomic, and never replaces a key another process made
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return parse_key(path.read_text())


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
