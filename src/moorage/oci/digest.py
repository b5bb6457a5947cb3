"""Digest value type: parse, validate and compute while streaming."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from moorage.errors import DigestInvalid

_ALGORITHMS = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)\Z")


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    """A content digest ``algorithm:hex``, validated on construction."""

    algorithm: str
    hex: str

    @classmethod
    def parse(cls, value: str) -> Digest:
        match = _DIGEST_RE.match(value or "")
        if not match:
            raise DigestInvalid(f"invalid digest {value!r}")
        algorithm, encoded = match.groups()
        length = _ALGORITHMS.get(algorithm)
        if length is None:
            raise DigestInvalid(f"unsupported digest algorithm {algorithm!r}")
        if len(encoded) != length or not re.fullmatch(r"[a-f0-9]+", encoded):
            raise DigestInvalid(f"invalid {algorithm} digest {value!r}")
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> hashlib._Hash:
        """A fresh hash object of this digest's algorithm."""
        return hashlib.new(self.algorithm)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def is_digest(value: str) -> bool:
    """True when ``value`` looks like a digest reference (contains ':'), not a tag."""
    return ":" in value
