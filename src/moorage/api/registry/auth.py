"""Registry access checks: every /v2/ handler asks here whether the caller may pull/push."""

from __future__ import annotations

from starlette.requests import Request

from moorage.auth.permissions import AccessController, Principal
from moorage.errors import Denied, Unauthorized


class ChallengeUnauthorized(Unauthorized):
    """authentication required"""

    def __init__(self, message: str, challenge: str) -> None:
        super().__init__(message)
        self.headers = {"WWW-Authenticate": challenge}


def challenge(request: Request, scope: str | None = None) -> str:
    settings = request.app.state.settings
    host = settings.SERVER_HOSTNAME or request.headers.get("host", "localhost")
    scheme = settings.PREFERRED_URL_SCHEME
    value = f'Bearer realm="{scheme}://{host}/v2/auth",service="{host}"'
    if scope:
        value += f',scope="{scope}"'
    return value


async def authenticate(request: Request) -> Principal:
    access: AccessController = request.app.state.access
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    principal = await access.authenticate(request.headers)
    request.state.principal = principal
    return principal


async def require(request: Request, repository: str, *actions: str) -> Principal:
    """Raise 401 (with a challenge) or 403 unless the caller may do ``actions``."""
    principal = await authenticate(request)
    access: AccessController = request.app.state.access
    wanted = frozenset(actions)
    granted = await access.allowed_actions(principal, repository, wanted)
    if granted >= wanted:
        return principal
    scope = f"repository:{repository}:{','.join(sorted(wanted))}"
    if principal.is_anonymous:
        raise ChallengeUnauthorized("authentication required", challenge(request, scope))
    raise Denied(f"requested access to {repository} is denied")


async def require_login(request: Request) -> Principal:
    """GET /v2/ needs any valid identity (anonymous allowed only when open)."""
    principal = await authenticate(request)
    if principal.is_anonymous:
        raise ChallengeUnauthorized("authentication required", challenge(request))
    return principal
