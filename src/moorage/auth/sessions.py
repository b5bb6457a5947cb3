"""Browser sessions for /api/v1: a signed cookie and a CSRF token derived from it. Stateless.

The cookie value is ``v1:<account id>:<username>:<expires>:<mac>``, where ``mac`` is
HMAC-SHA256 over everything before it plus the account's *fingerprint* (a hash of its password
hash), keyed with a key derived from ``SECRET_KEY``. Nothing is stored on the server: changing
the password (or the secret key) invalidates every session at once, and a session cannot be
stretched past ``expires``. The CSRF token is another HMAC of the cookie value, so a script on
the page can send it back in ``X-CSRF-Token`` while the cookie itself stays HttpOnly.

Everything here is a pure function of its arguments (the clock is a parameter).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

COOKIE_NAME = "moorage_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_SECONDS = 12 * 3600
VERSION = "v1"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_COOKIE_LENGTH = 512

_SESSION_LABEL = b"moorage/session-cookie/v1"
_CSRF_LABEL = b"moorage/session-csrf/v1"


@dataclass(frozen=True, slots=True)
class SessionClaims:
    """What a cookie says. Only trust it after ``verify`` returned it."""

    account_id: int
    username: str
    expires: int  # unix seconds


def _key(secret: str, label: bytes) -> bytes:
    return hmac.new(secret.encode(), label, hashlib.sha256).digest()


def _mac(key: bytes, message: str) -> str:
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def fingerprint(secret_hash: str | None) -> str:
    """Binds a session to the account's current password: a new password ends old sessions."""
    return hashlib.sha256((secret_hash or "").encode()).hexdigest()[:32]


def issue(secret: str, account_id: int, username: str, account_fingerprint: str, now: int) -> str:
    """A new cookie value, valid for SESSION_SECONDS from ``now``."""
    if ":" in username:
        raise ValueError("username must not contain ':'")
    body = f"{VERSION}:{account_id}:{username}:{now + SESSION_SECONDS}"
    return f"{body}:{_mac(_key(secret, _SESSION_LABEL), body + ':' + account_fingerprint)}"


def peek(value: str, now: int) -> SessionClaims | None:
    """Parse an (unverified) cookie; None when malformed or expired."""
    if not value or len(value) > MAX_COOKIE_LENGTH:
        return None
    parts = value.split(":")
    if len(parts) != 5 or parts[0] != VERSION:
        return None
    _, account_id, username, expires, _mac_value = parts
    # isascii(): str.isdigit() also accepts "²", which int() refuses.
    numbers = account_id + expires
    if not (numbers.isascii() and account_id.isdigit() and expires.isdigit() and username):
        return None
    claims = SessionClaims(int(account_id), username, int(expires))
    if claims.expires <= now or claims.expires > now + SESSION_SECONDS:
        return None
    return claims


def verify(secret: str, value: str, account_fingerprint: str, now: int) -> SessionClaims | None:
    """The cookie's claims if it is well-formed, unexpired and signed for this fingerprint."""
    claims = peek(value, now)
    if claims is None:
        return None
    body, _, mac = value.rpartition(":")
    expected = _mac(_key(secret, _SESSION_LABEL), body + ":" + account_fingerprint)
    if not hmac.compare_digest(mac.encode(), expected.encode()):
        return None
    return claims


def csrf_token(secret: str, value: str) -> str:
    """The CSRF token of a session cookie value (deterministic, so nothing is stored)."""
    return _mac(_key(secret, _CSRF_LABEL), value)


def csrf_valid(secret: str, value: str, token: str | None) -> bool:
    if not token:
        return False
    return hmac.compare_digest(token.encode(), csrf_token(secret, value).encode())


def needs_csrf(method: str) -> bool:
    return method.upper() not in SAFE_METHODS
