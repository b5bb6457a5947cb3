"""Authentication of requests and the facts behind every permission decision."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import Headers

from moorage.auth import scopes as sc
from moorage.auth import tokens
from moorage.auth.permissions import (
    ANONYMOUS,
    PULL,
    Policy,
    Principal,
    RepoFacts,
    decide,
)
from moorage.db.engine import Database
from moorage.db.models import RepoRole, RepositoryState, Visibility
from moorage.db.queries.access import AccessQueries
from moorage.errors import Unauthorized
from moorage.oci.reference import split_repository
from moorage.services.accounts import AccountService

# Given a repository id, the robot allowed to push while it is in MIRROR state (mirror config).
MirrorRobotLookup = Callable[[AsyncSession, int], Awaitable[str | None]]


def parse_basic(value: str) -> tuple[str, str] | None:
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):  # ValueError: not ASCII ("²")
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


class AccessService:
    """Gathers facts from the database and asks ``decide``. Used by the registry and the API."""

    def __init__(
        self,
        db: Database,
        accounts: AccountService,
        policy: Policy,
        token_secret: str,
        mirror_robot: MirrorRobotLookup | None = None,
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.policy = policy
        self.token_secret = token_secret
        self.mirror_robot = mirror_robot

    async def facts(self, principal: Principal, full_name: str) -> RepoFacts:
        namespace, name = split_repository(full_name)
        async with self.db.transaction(readonly=True) as session:
            queries = AccessQueries(session)
            repo = await queries.repositories.get(namespace, name)
            is_admin, can_create = False, False
            if principal.account_id is not None:
                is_admin, can_create = await queries.namespace_role(principal.account_id, namespace)
            if repo is None:
                return RepoFacts(namespace, name, exists=False, can_create=can_create)
            role: RepoRole | None = RepoRole.ADMIN if is_admin else None
            if role is None and principal.account_id is not None:
                role = await queries.repo_role(repo.id, principal.account_id)
            robot = None
            if repo.state == RepositoryState.MIRROR and self.mirror_robot is not None:
                robot = await self.mirror_robot(session, repo.id)
            return RepoFacts(
                namespace,
                name,
                exists=True,
                visibility=Visibility(repo.visibility),
                state=RepositoryState(repo.state),
                role=role,
                can_create=can_create,
                mirror_robot=robot,
            )

    async def allowed(
        self, principal: Principal, full_name: str, actions: frozenset[str]
    ) -> frozenset[str]:
        facts = await self.facts(principal, full_name)
        return frozenset(a for a in actions if decide(principal, facts, a, self.policy))

    async def namespace_rights(self, principal: Principal, namespace: str) -> tuple[bool, bool]:
        """(namespace admin, may create repositories) — superusers administer everything."""
        if principal.account_id is None:
            return False, False
        async with self.db.transaction(readonly=True) as session:
            admin, create = await AccessQueries(session).namespace_role(
                principal.account_id, namespace
            )
        if principal.superuser and principal.has_scope(sc.SUPER_USER):
            return True, True
        return admin, create

    # --- request authentication -------------------------------------------------------------
    async def principal_from_headers(self, headers: Headers, audience: str | None) -> Principal:
        """Identify the caller; anonymous when no credentials, Unauthorized when bad ones."""
        value = headers.get("authorization", "")
        scheme, _, credential = value.partition(" ")
        scheme = scheme.lower()
        credential = credential.strip()
        if not value:
            return ANONYMOUS
        if scheme == "basic":
            parsed = parse_basic(credential)
            principal = await self.accounts.authenticate(*parsed) if parsed else None
        elif scheme == "bearer":
            if tokens.looks_like_jwt(credential) and audience is not None:
                principal = tokens.verify(self.token_secret, audience, credential)
            else:
                principal = await self.accounts.authenticate_token(credential)
        else:
            principal = None
        if principal is None:
            raise Unauthorized("invalid credentials")
        return principal


class RegistryAccess:
    """The AccessController of the /v2/ API: bearer JWTs, Basic credentials, anonymous."""

    def __init__(self, access: AccessService, audience: Callable[[Headers], str]) -> None:
        self.access = access
        self.audience = audience

    async def authenticate(self, headers: Headers) -> Principal:
        return await self.access.principal_from_headers(headers, self.audience(headers))

    async def allowed_actions(
        self, principal: Principal, repository: str, actions: frozenset[str]
    ) -> frozenset[str]:
        if principal.granted is not None:
            granted = principal.granted.get(repository, frozenset())
            wanted = actions & granted
            # Pulls trust the token; writes are re-checked live (state may have changed).
            if wanted - {PULL}:
                wanted = (wanted & {PULL}) | await self.access.allowed(
                    principal, repository, wanted - {PULL}
                )
            return wanted
        return await self.access.allowed(principal, repository, actions)
