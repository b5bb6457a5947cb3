"""Registry access checks: every /v2/ handler asks here whether the caller may pull/push."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.requests import Request

from moorage.api.deps import client_address, login_throttle
from moorage.auth.permissions import AccessController, Principal
from moorage.config import Settings
from moorage.errors import Denied, Unauthorized
from moorage.services.access import parse_basic


class ChallengeUnauthorized(Unauthorized):
    """authentication required"""

    def __init__(self, message: str, challenge: str) -> None:
        super().__init__(message)
        self.headers = {"WWW-Authenticate": challenge}


def audience(headers: Headers, settings: Settings) -> str:
    """The token service name: SERVER_HOSTNAME, else the Host the client used."""
    return settings.SERVER_HOSTNAME or headers.get("host", "localhost")


def challenge(request: Request, scope: str | None = None) -> str:
    settings: Settings = request.app.state.settings
    host = audience(request.headers, settings)
    value = f'Bearer realm="{settings.PREFERRED_URL_SCHEME}://{host}/v2/auth",service="{host}"'
    if scope:
        value += f',scope="{scope}"'
    return value


async def authenticate(request: Request) -> Principal:
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    access: AccessController = request.app.state.access
    login = basic_username(request.headers.get("authorization", ""))
    throttle = login_throttle(request) if login is not None else None
    address = client_address(request)
    if throttle is not None:
        await throttle.check(login, address)
    try:
        principal = await access.authenticate(request.headers)
    except Unauthorized as exc:
        if throttle is not None:
            await throttle.failed(login, address)
        raise ChallengeUnauthorized(exc.message, challenge(request)) from exc
    if throttle is not None:
        await throttle.succeeded(login, address)
    request.state.principal = principal
    return principal


def basic_username(authorization: str) -> str | None:
    """The username of Basic credentials (a password or robot-token login), else None."""
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    parsed = parse_basic(credential.strip())
    return parsed[0] if parsed is not None else ""


async def require(request: Request, repository: str, *actions: str) -> Principal:
    """Raise 401 (with a challenge) or 403 unless the caller may do ``actions``."""
    principal = await authenticate(request)
    access: AccessController = request.app.state.access
    wanted = frozenset(actions)
    granted = await access.allowed_actions(principal, repository, wanted)
    if granted >= wanted:
        return principal
    scope = f"repository:{repository}:{','.join(sorted(wanted))}"
    if principal.is_anonymous or principal.granted is not None:
        # No credentials, or a token lacking this scope: tell the client which token to get.
        raise ChallengeUnauthorized("authentication required", challenge(request, scope))
    raise Denied(f"requested access to {repository} is denied")


async def require_login(request: Request) -> Principal:
    """GET /v2/ needs credentials or a token (anonymous tokens included)."""
    principal = await authenticate(request)
    if principal.is_anonymous and principal.granted is None:
        raise ChallengeUnauthorized("authentication required", challenge(request))
    return principal
