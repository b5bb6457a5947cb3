"""Facts about a repository and a caller that permission decisions need."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from moorage.db.models import Account, AccountKind, OrgRole, RepoRole
from moorage.db.queries.accounts import AccountQueries
from moorage.db.queries.repositories import RepositoryQueries


class AccessQueries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.accounts = AccountQueries(session)
        self.repositories = RepositoryQueries(session)

    async def namespace_role(self, account_id: int, namespace: str) -> tuple[bool, bool]:
        """(is namespace admin, may create repositories in it) for an account."""
        owner = await self.accounts.by_name(namespace)
        if owner is None:
            return False, False
        if owner.id == account_id and owner.kind == AccountKind.USER:
            return True, True
        if owner.kind != AccountKind.ORGANIZATION:
            return False, False
        role = await self.accounts.org_role(owner.id, account_id)
        return role == OrgRole.ADMIN, role in {OrgRole.ADMIN, OrgRole.CREATOR}

    async def namespace_account(self, namespace: str) -> Account | None:
        return await self.accounts.by_name(namespace)

    async def repo_role(self, repository_id: int, account_id: int) -> RepoRole | None:
        return await self.accounts.repo_role(repository_id, account_id)
