"""Encrypt credentials at rest: AES-CCM keyed from DATABASE_SECRET_KEY, Quay's ``v0$$`` format."""

from __future__ import annotations

import base64
import binascii
import itertools
import os
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

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
    def __init__(self, secret: str) -> None:
        self._aead = AESCCM(derive_key(secret))

    def encrypt(self, value: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value.encode(), None)
        return PREFIX + base64.b64encode(nonce + sealed).decode()

    def decrypt(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            raise DecryptionFailure("unknown encryption format")
        try:
            blob = base64.b64decode(stored[len(PREFIX) :], validate=True)
            plain = self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], None)
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise DecryptionFailure("cannot decrypt stored credential") from exc
        return plain.decode()
