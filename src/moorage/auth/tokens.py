"""Issue and verify registry bearer tokens (JWT, Docker token-auth ``access`` claims)."""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from moorage.auth.permissions import Principal

ISSUER = "moorage"
ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class AccessGrant:
    type: str
    name: str
    actions: tuple[str, ...]


def _key(secret: str) -> bytes:
    return hashlib.sha256(b"moorage-registry-token:" + secret.encode()).digest()


def issue(
    secret: str,
    audience: str,
    principal: Principal,
    grants: list[AccessGrant],
    lifetime: int,
) -> tuple[str, int, int]:
    """Return (token, issued_at, expires_in)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": audience,
        "sub": principal.name or "",
        "iat": now,
        "nbf": now - 5,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
        "access": [{"type": g.type, "name": g.name, "actions": list(g.actions)} for g in grants],
        "context": {
            "kind": principal.kind,
            "account_id": principal.account_id,
            "superuser": principal.superuser,
        },
    }
    return jwt.encode(claims, _key(secret), algorithm=ALGORITHM), now, lifetime


def verify(secret: str, audience: str, token: str) -> Principal | None:
    """The principal a valid token stands for, or None (bad signature, audience or expiry)."""
    try:
        claims = jwt.decode(
            token,
            _key(secret),
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "aud", "iss", "sub"]},
        )
    except jwt.PyJWTError:
        return None
    context = claims.get("context") or {}
    granted: dict[str, frozenset[str]] = {}
    for entry in claims.get("access") or []:
        if isinstance(entry, dict) and entry.get("type") == "repository":
            granted[str(entry.get("name"))] = frozenset(str(a) for a in entry.get("actions", []))
    kind = str(context.get("kind") or "anonymous")
    return Principal(
        kind=kind,
        name=claims.get("sub") or None,
        account_id=context.get("account_id"),
        superuser=bool(context.get("superuser")),
        granted=granted,
    )


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2
