"""Per-user (and per-robot) repository permissions (Quay's repository user permissions)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from moorage.db.engine import Database
from moorage.db.models import Account, AccountKind, RepoRole, Repository
from moorage.db.queries.accounts import AccountQueries
from moorage.db.queries.permissions import PermissionQueries
from moorage.db.queries.repositories import RepositoryQueries
from moorage.errors import InvalidRequest, NotFound
from moorage.services.accounts import split_robot
from moorage.services.audit import Actor, record


@dataclass(frozen=True, slots=True)
class UserPermission:
    name: str
    role: RepoRole
    is_robot: bool
    # None when the repository's namespace is not an organization (Quay omits the field then).
    is_org_member: bool | None


@dataclass(frozen=True, slots=True)
class _Context:
    repo: Repository
    org: Account | None


class PermissionService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def _context(self, session: AsyncSession, namespace: str, name: str) -> _Context:
        repo = await RepositoryQueries(session).get(namespace, name)
        if repo is None:
            raise NotFound("Not Found")
        owner = await AccountQueries(session).by_name(namespace)
        org = owner if owner is not None and owner.kind == AccountKind.ORGANIZATION else None
        return _Context(repo, org)

    async def _views(
        self, session: AsyncSession, ctx: _Context, grants: list[tuple[Account, RepoRole]]
    ) -> list[UserPermission]:
        members: set[int] = set()
        if ctx.org is not None:
            members = await PermissionQueries(session).org_member_ids(
                ctx.org.id, [a.id for a, _ in grants]
            )
        return [
            UserPermission(
                name=account.username,
                role=RepoRole(role),
                is_robot=account.kind == AccountKind.ROBOT,
                is_org_member=None
                if ctx.org is None
                else account.kind == AccountKind.ROBOT or account.id in members,
            )
            for account, role in grants
        ]

    async def list_users(self, namespace: str, name: str) -> list[UserPermission]:
        async with self.db.transaction(readonly=True) as session:
            ctx = await self._context(session, namespace, name)
            grants = list(await AccountQueries(session).repo_roles(ctx.repo.id))
            return await self._views(session, ctx, grants)

    async def get(self, namespace: str, name: str, username: str) -> UserPermission:
        async with self.db.transaction(readonly=True) as session:
            ctx = await self._context(session, namespace, name)
            queries = AccountQueries(session)
            account = await queries.by_name(username)
            role = await queries.repo_role(ctx.repo.id, account.id) if account else None
            if account is None or role is None:
                raise NotFound("Not Found")
            return (await self._views(session, ctx, [(account, role)]))[0]

    async def set(
        self, namespace: str, name: str, username: str, role: RepoRole, actor: Actor
    ) -> UserPermission:
        """Grant ``role``. The namespace owner is always admin; robots only in their namespace."""
        if username == namespace:
            raise InvalidRequest("Namespace owner must always be admin.")
        async with self.db.transaction() as session:
            ctx = await self._context(session, namespace, name)
            queries = AccountQueries(session)
            account = await queries.by_name(username)
            if account is None or account.kind == AccountKind.ORGANIZATION:
                raise InvalidRequest(f"Invalid username: {username}")
            if account.kind == AccountKind.ROBOT and split_robot(username)[0] != namespace:
                raise InvalidRequest("Invalid robot")
            await queries.set_repo_role(ctx.repo.id, account.id, role)
            record(
                session,
                "change_repo_permission",
                actor,
                namespace=namespace,
                repository=name,
                metadata={"username": username, "role": role.value},
            )
            return (await self._views(session, ctx, [(account, role)]))[0]

    async def delete(self, namespace: str, name: str, username: str, actor: Actor) -> None:
        if username == namespace:
            raise InvalidRequest("Namespace owner must always be admin.")
        async with self.db.transaction() as session:
            ctx = await self._context(session, namespace, name)
            queries = AccountQueries(session)
            account = await queries.by_name(username)
            if account is None or not await queries.delete_repo_role(ctx.repo.id, account.id):
                raise NotFound("Not Found")
            record(
                session,
                "delete_repo_permission",
                actor,
                namespace=namespace,
                repository=name,
                metadata={"username": username},
            )
