"""Dependencies of /api/v1 handlers: the caller, their rights, and the audit actor."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request

from moorage.api.deps import client_address, login_throttle
from moorage.api.registry.auth import basic_username
from moorage.auth import scopes as sc
from moorage.auth import sessions
from moorage.auth.permissions import Principal
from moorage.config import Settings
from moorage.db.models import AccountKind
from moorage.errors import (
    AuthenticationRequired,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ServiceReadOnly,
    Unauthorized,
)
from moorage.services.access import AccessService
from moorage.services.accounts import AccountService
from moorage.services.audit import Actor
from moorage.services.management import ManagementServices
from moorage.services.registry import RegistryServices


def get_settings(request: Request) -> Settings:
    value: Settings = request.app.state.settings
    return value


def get_access(request: Request) -> AccessService:
    value: AccessService = request.app.state.access_service
    return value


def get_accounts(request: Request) -> AccountService:
    value: AccountService = request.app.state.accounts
    return value


def get_management(request: Request) -> ManagementServices:
    value: ManagementServices = request.app.state.management
    return value


def get_registry(request: Request) -> RegistryServices:
    value: RegistryServices = request.app.state.services
    return value


async def session_principal(request: Request, cookie: str) -> Principal | None:
    """The account of a valid session cookie (moorage.auth.sessions), else None."""
    now = int(time.time())
    claims = sessions.peek(cookie, now)
    if claims is None:
        return None
    accounts = get_accounts(request)
    try:
        account = await accounts.get(claims.username)
    except NotFound:
        return None
    if account.id != claims.account_id or account.kind != AccountKind.USER or not account.enabled:
        return None
    secret = get_settings(request).secret("SECRET_KEY")
    if sessions.verify(secret, cookie, sessions.fingerprint(account.secret_hash), now) is None:
        return None
    return accounts.principal_for(account)


async def get_principal(request: Request) -> Principal:
    """Bearer access token, Basic credentials, or a session cookie; else anonymous.

    A request authenticated by its session cookie must carry the session's CSRF token in
    ``X-CSRF-Token`` unless its method is safe (GET, HEAD, OPTIONS); otherwise 403. An invalid
    or expired cookie counts as no credentials (the UI then asks the user to sign in again).
    """
    access = get_access(request)
    cookie = request.cookies.get(sessions.COOKIE_NAME)
    if cookie and "authorization" not in request.headers:
        principal = await session_principal(request, cookie)
        if principal is not None:
            if sessions.needs_csrf(request.method):
                secret = get_settings(request).secret("SECRET_KEY")
                if not sessions.csrf_valid(
                    secret, cookie, request.headers.get(sessions.CSRF_HEADER)
                ):
                    raise PermissionDenied("Invalid or missing CSRF token")
            return principal
    login = basic_username(request.headers.get("authorization", ""))
    throttle = login_throttle(request) if login is not None else None
    address = client_address(request)
    if throttle is not None:
        await throttle.check(login, address)
    try:
        principal = await access.principal_from_headers(request.headers, audience=None)
    except Unauthorized as exc:
        if throttle is not None:
            await throttle.failed(login, address)
        raise AuthenticationRequired("Invalid credentials") from exc
    if throttle is not None:
        await throttle.succeeded(login, address)
    return principal


async def get_user(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if principal.is_anonymous or principal.account_id is None:
        raise AuthenticationRequired("Requires authentication")
    return principal


def get_actor(request: Request, principal: Annotated[Principal, Depends(get_principal)]) -> Actor:
    ip = request.client.host if request.client else None
    return Actor(principal, ip, request.headers.get("user-agent"))


def no_nul_characters(request: Request) -> None:
    """NUL cannot be stored in PostgreSQL text: refuse it in the path and the query (400)."""
    query = request.query_params.multi_items()
    if "\x00" in request.url.path or any("\x00" in k + v for k, v in query):
        raise InvalidRequest("NUL characters are not allowed in the path or query")


def writable(request: Request) -> None:
    """Registry-wide read-only mode refuses every write (Quay's check_readonly)."""
    if request.method != "GET" and get_settings(request).REGISTRY_STATE == "readonly":
        raise ServiceReadOnly(
            "System is currently read-only. Pulls will succeed but all write operations "
            "are currently suspended.",
            detail={"is_readonly": True},
        )


def require_scope(principal: Principal, scope: str) -> None:
    if not principal.has_scope(scope):
        raise PermissionDenied("Unauthorized")


def require_user_account(principal: Principal) -> None:
    """Only a user (not a robot) may act on their own namespace's robots and organizations."""
    if principal.kind != "user":
        raise PermissionDenied("Unauthorized")


def require_superuser(principal: Principal) -> None:
    if not (principal.superuser and principal.has_scope(sc.SUPER_USER)):
        raise PermissionDenied("Unauthorized")


SettingsDep = Annotated[Settings, Depends(get_settings)]
AccessDep = Annotated[AccessService, Depends(get_access)]
AccountsDep = Annotated[AccountService, Depends(get_accounts)]
RegistryDep = Annotated[RegistryServices, Depends(get_registry)]
ManagementDep = Annotated[ManagementServices, Depends(get_management)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
UserDep = Annotated[Principal, Depends(get_user)]
ActorDep = Annotated[Actor, Depends(get_actor)]
