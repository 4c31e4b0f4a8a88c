"""Encryption of TOTP secrets at rest (Fernet, from the ``cryptography`` package).

The key comes from ``[security] secret_key`` or the file ``secret_key_file``;
``previous_keys`` still decrypt during a rotation, and ``rotate`` re-encrypts
every secret under the current key. A ``SecretBox`` never shows a key in its repr.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from bot.config import Settings
from bot.errors import ConfigError
from bot.storage.files import make_private_dir


class SecretBox:
    """Encrypts and decrypts small secrets with the configured keys."""

    def __init__(self, current: bytes, previous: tuple[bytes, ...] = ()) -> None:
        try:
            self._fernet = MultiFernet([Fernet(current), *(Fernet(k) for k in previous)])
        except ValueError as exc:
            raise ConfigError("security.secret_key: expected a Fernet key (32 url-safe base64-encoded bytes)") from exc

    def __repr__(self) -> str:
        return "SecretBox(<keys hidden>)"

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, ciphertext: bytes) -> str:
        try:
            return self._fernet.decrypt(ciphertext).decode()
        except InvalidToken as exc:
            raise ConfigError(
                "security.secret_key: the configured key cannot decrypt the stored TOTP secrets "
                "(was the key changed without a rotation?)"
            ) from exc

    def rotate(self, ciphertext: bytes) -> bytes:
        """The same secret encrypted under the current key."""
        return self._fernet.rotate(ciphertext)

    @staticmethod
    def generate_key() -> bytes:
        return Fernet.generate_key()


def load_key(settings: Settings) -> SecretBox | None:
    """The configured ``SecretBox``, or ``None`` when no key is configured anywhere."""
    previous = tuple(k.get_secret_value().encode() for k in settings.security.previous_keys)
    if settings.security.secret_key is not None:
        return SecretBox(settings.security.secret_key.get_secret_value().encode(), previous)
    path = settings.key_file
    if path.exists():
        return SecretBox(path.read_bytes().strip(), previous)
    return None


def create_key_file(path: Path) -> SecretBox:
    """Write a new key file readable only by its owner (used by the demo)."""
    make_private_dir(path.parent)
    key = SecretBox.generate_key()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key + b"\n")
    return SecretBox(key)
