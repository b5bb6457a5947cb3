"""Encrypt credentials at rest: AES-CCM keyed from DATABASE_SECRET_KEY, Quay's ``v0$$`` format.

Key rotation: a cipher also holds the previous keys (DATABASE_SECRET_KEY_PREVIOUS). Values are
always encrypted with the current key; decryption tries the current key, then each previous one.
``reseal`` re-encrypts a value written under a previous key (`moorage admin rotate-secret-key`).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import os
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

if TYPE_CHECKING:
    from moorage.config import Settings

PREFIX = "v0$$"
NONCE_BYTES = 13


class DecryptionFailure(Exception):
    """Stored ciphertext could not be decrypted (wrong DATABASE_SECRET_KEY or corrupt data)."""


def derive_key(secret: str) -> bytes:
    """Quay's conversion: an integer's hex bytes, a UUID's bytes, else the text, cycled to 32."""
    raw: bytes
    try:
        number = int(secret)
        text = f"{number:x}"
        raw = bytes.fromhex(text if len(text) % 2 == 0 else "0" + text)
    except ValueError:
        try:
            raw = uuid.UUID(secret).bytes
        except ValueError:
            raw = secret.encode()
    if not raw:
        raise ValueError("DATABASE_SECRET_KEY must not be empty")
    return bytes(itertools.islice(itertools.cycle(raw), 32))


class FieldCipher:
    """Encrypts with ``secret``; decrypts with ``secret`` or any of ``previous`` (in order)."""

    def __init__(self, secret: str, previous: Sequence[str] = ()) -> None:
        current = derive_key(secret)
        self._aead = AESCCM(current)
        older: list[AESCCM] = []
        seen = {current}
        for old in previous:
            key = derive_key(old)
            if key not in seen:  # the current key listed again changes nothing
                seen.add(key)
                older.append(AESCCM(key))
        self._previous = tuple(older)

    @property
    def previous_keys(self) -> int:
        """How many distinct previous keys this cipher can still decrypt with."""
        return len(self._previous)

    def encrypt(self, value: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value.encode(), None)
        return PREFIX + base64.b64encode(nonce + sealed).decode()

    def decrypt(self, stored: str) -> str:
        """The plaintext, opened with the current key or, failing that, a previous one."""
        return self._open(stored)[0]

    def reseal(self, stored: str) -> str | None:
        """``None`` if ``stored`` is already under the current key; else the value encrypted
        with the current key. Raises DecryptionFailure if no key opens it."""
        plain, current = self._open(stored)
        return None if current else self.encrypt(plain)

    def _open(self, stored: str) -> tuple[str, bool]:
        if not stored.startswith(PREFIX):
            raise DecryptionFailure("unknown encryption format")
        try:
            blob = base64.b64decode(stored[len(PREFIX) :], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DecryptionFailure("cannot decrypt stored credential") from exc
        nonce, sealed = blob[:NONCE_BYTES], blob[NONCE_BYTES:]
        for index, aead in enumerate((self._aead, *self._previous)):
            try:
                plain = aead.decrypt(nonce, sealed, None)
            except (InvalidTag, ValueError):
                continue
            try:
                return plain.decode(), index == 0
            except UnicodeDecodeError as exc:
                raise DecryptionFailure("cannot decrypt stored credential") from exc
        raise DecryptionFailure("cannot decrypt stored credential")


def field_cipher(settings: Settings) -> FieldCipher:
    """The cipher of a process: DATABASE_SECRET_KEY, then DATABASE_SECRET_KEY_PREVIOUS."""
    return FieldCipher(
        settings.secret("DATABASE_SECRET_KEY"),
        [key.get_secret_value() for key in settings.DATABASE_SECRET_KEY_PREVIOUS],
    )
