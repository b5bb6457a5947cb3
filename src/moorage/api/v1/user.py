"""/api/v1/user: the current user, first-user initialization, and personal access tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from moorage.api.v1.deps import AccountsDep, ActorDep, SettingsDep, UserDep, require_scope, writable
from moorage.api.v1.schemas import (
    MAX_INT64,
    MIN_INT64,
    OrganizationSummary,
    TokenCreate,
    TokenCreated,
    TokenRead,
    UserInitialize,
    UserInitialized,
    UserRead,
)
from moorage.auth import scopes as sc
from moorage.db.models import AccessToken, OrgRole
from moorage.errors import InvalidRequest, NotFound
from moorage.services.audit import Actor

router = APIRouter(tags=["user"], dependencies=[Depends(writable)])


def _iso(token: AccessToken) -> tuple[str, str | None]:
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    last = token.last_used_at.strftime(fmt) if token.last_used_at else None
    return token.created_at.strftime(fmt), last


def token_read(token: AccessToken) -> TokenRead:
    created, last = _iso(token)
    return TokenRead(
        id=token.id,
        name=token.name,
        scopes=list(token.scopes),
        token_prefix=token.token_prefix,
        created=created,
        last_used=last,
    )


@router.get("/user/", response_model=UserRead)
async def get_current_user(principal: UserDep, accounts: AccountsDep) -> UserRead:
    require_scope(principal, sc.USER_READ)
    assert principal.account_id is not None
    assert principal.name is not None
    account = await accounts.get(principal.name)
    orgs = await accounts.organizations_of(principal.account_id)
    return UserRead(
        username=account.username,
        email=account.email,
        super_user=principal.superuser,
        is_robot=principal.kind == "robot",
        organizations=[
            OrganizationSummary(name=org.username, is_org_admin=role == OrgRole.ADMIN)
            for org, role in orgs
        ],
        scopes=sorted(principal.scopes) if principal.scopes is not None else None,
    )


@router.post("/user/initialize", response_model=UserInitialized)
async def initialize_user(
    body: UserInitialize, accounts: AccountsDep, settings: SettingsDep, actor: ActorDep
) -> UserInitialized:
    """Create the first user of an empty instance (FEATURE_USER_INITIALIZE), as Quay does."""
    if not settings.FEATURE_USER_INITIALIZE:
        raise NotFound("Not Found")
    if await accounts.has_users():
        raise InvalidRequest("Cannot initialize user in a non-empty database")
    account = await accounts.create_user(body.username, body.password, body.email, actor)
    token = None
    if body.access_token:
        created = await accounts.create_token(
            account.id, "initial token", list(sc.ALL_SCOPES), Actor.system()
        )
        token = created.secret
    return UserInitialized(username=account.username, email=account.email, access_token=token)


@router.get("/user/tokens", response_model=list[TokenRead])
async def list_tokens(principal: UserDep, accounts: AccountsDep) -> list[TokenRead]:
    """Moorage extension: your access tokens (the secrets are never shown again)."""
    require_scope(principal, sc.USER_READ)
    assert principal.account_id is not None
    return [token_read(t) for t in await accounts.list_tokens(principal.account_id)]


@router.post("/user/tokens", status_code=201, response_model=TokenCreated)
async def create_token(
    body: TokenCreate, principal: UserDep, accounts: AccountsDep, actor: ActorDep
) -> TokenCreated:
    """Moorage extension: create an access token for yourself, with at most your own scopes."""
    require_scope(principal, sc.USER_ADMIN)
    assert principal.account_id is not None
    if principal.kind == "robot":
        raise InvalidRequest("Robots cannot create access tokens")
    if principal.scopes is not None and not set(body.scopes) <= principal.scopes:
        raise InvalidRequest("A token cannot carry scopes its creator does not have")
    created = await accounts.create_token(principal.account_id, body.name, body.scopes, actor)
    assert created.token is not None
    return TokenCreated(**token_read(created.token).model_dump(), token=created.secret)


@router.delete("/user/tokens/{token_id}", status_code=204)
async def revoke_token(
    token_id: Annotated[int, Path(ge=MIN_INT64, le=MAX_INT64)],
    principal: UserDep,
    accounts: AccountsDep,
    actor: ActorDep,
) -> Response:
    require_scope(principal, sc.USER_ADMIN)
    assert principal.account_id is not None
    await accounts.revoke_token(principal.account_id, token_id, actor)
    return Response(status_code=204)
