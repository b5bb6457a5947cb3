"""GET /v2/auth — the Docker token endpoint: Basic credentials in, a scoped JWT out."""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from moorage.api.registry.auth import audience, authenticate
from moorage.auth import tokens
from moorage.auth.permissions import ALL_ACTIONS
from moorage.errors import NameInvalid
from moorage.services.access import AccessService


def parse_scope(scope: str) -> tuple[str, str, frozenset[str]] | None:
    """``repository:ns/repo:pull,push`` → (type, name, actions); None when malformed."""
    rest, sep, actions = scope.rpartition(":")
    kind, sep2, name = rest.partition(":")
    if not sep or not sep2 or not kind or not name:
        return None
    return kind.split("(", 1)[0], name, frozenset(a for a in actions.split(",") if a)


async def get_token(request: Request) -> Response:
    principal = await authenticate(request)
    access: AccessService = request.app.state.access_service
    grants: list[tokens.AccessGrant] = []
    for raw in request.query_params.getlist("scope"):
        for part in raw.split(" "):
            parsed = parse_scope(part)
            if parsed is None:
                continue
            kind, name, actions = parsed
            if kind == "repository":
                try:
                    allowed = await access.allowed(principal, name, actions & ALL_ACTIONS)
                except NameInvalid:
                    allowed = frozenset()
                grants.append(tokens.AccessGrant(kind, name, tuple(sorted(allowed))))
            elif kind == "registry" and name == "catalog" and not principal.is_anonymous:
                grants.append(tokens.AccessGrant(kind, name, ("*",)))
    settings = request.app.state.settings
    token, issued_at, expires_in = tokens.issue(
        settings.secret("SECRET_KEY"),
        audience(request.headers, settings),
        principal,
        grants,
        settings.REGISTRY_TOKEN_LIFETIME_SECONDS,
    )
    issued = dt.datetime.fromtimestamp(issued_at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"token": token, "access_token": token, "expires_in": expires_in, "issued_at": issued}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
