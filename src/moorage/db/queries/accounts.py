"""Queries on accounts, organization membership, repository permissions and access tokens."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from moorage.db.base import utcnow
from moorage.db.models import (
    AccessToken,
    Account,
    AccountKind,
    OrgMember,
    OrgRole,
    RepoRole,
    RepositoryPermission,
)


class AccountQueries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_name(self, username: str) -> Account | None:
        stmt = select(Account).where(Account.username == username)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def by_id(self, account_id: int) -> Account | None:
        return await self.session.get(Account, account_id)

    async def count_users(self) -> int:
        stmt = select(Account.id).where(Account.kind == AccountKind.USER).limit(1)
        return len((await self.session.execute(stmt)).all())

    async def add(self, account: Account) -> Account:
        self.session.add(account)
        await self.session.flush()
        return account

    async def delete(self, account_id: int) -> None:
        await self.session.execute(delete(Account).where(Account.id == account_id))

    async def set_secret(self, account_id: int, secret_hash: str) -> None:
        await self.session.execute(
            update(Account).where(Account.id == account_id).values(secret_hash=secret_hash)
        )

    async def robots(self, owner_id: int) -> Sequence[Account]:
        stmt = (
            select(Account)
            .where(Account.owner_id == owner_id, Account.kind == AccountKind.ROBOT)
            .order_by(Account.username)
        )
        return (await self.session.execute(stmt)).scalars().all()

    # --- organizations -------------------------------------------------------------------
    async def org_role(self, org_id: int, account_id: int) -> OrgRole | None:
        stmt = select(OrgMember.role).where(
            OrgMember.org_id == org_id, OrgMember.account_id == account_id
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def set_org_role(self, org_id: int, account_id: int, role: OrgRole) -> None:
        existing = await self.session.get(OrgMember, (org_id, account_id))
        if existing is None:
            self.session.add(OrgMember(org_id=org_id, account_id=account_id, role=role))
        else:
            existing.role = role
        await self.session.flush()

    async def organizations_of(self, account_id: int) -> Sequence[tuple[Account, OrgRole]]:
        stmt = (
            select(Account, OrgMember.role)
            .join(OrgMember, OrgMember.org_id == Account.id)
            .where(OrgMember.account_id == account_id)
            .order_by(Account.username)
        )
        return [(row[0], row[1]) for row in (await self.session.execute(stmt)).all()]

    # --- repository permissions -----------------------------------------------------------
    async def repo_role(self, repository_id: int, account_id: int) -> RepoRole | None:
        stmt = select(RepositoryPermission.role).where(
            RepositoryPermission.repository_id == repository_id,
            RepositoryPermission.account_id == account_id,
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def set_repo_role(self, repository_id: int, account_id: int, role: RepoRole) -> None:
        existing = await self.session.get(RepositoryPermission, (repository_id, account_id))
        if existing is None:
            self.session.add(
                RepositoryPermission(repository_id=repository_id, account_id=account_id, role=role)
            )
        else:
            existing.role = role
        await self.session.flush()

    async def delete_repo_role(self, repository_id: int, account_id: int) -> bool:
        result = await self.session.execute(
            delete(RepositoryPermission).where(
                RepositoryPermission.repository_id == repository_id,
                RepositoryPermission.account_id == account_id,
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def repo_roles(self, repository_id: int) -> Sequence[tuple[Account, RepoRole]]:
        stmt = (
            select(Account, RepositoryPermission.role)
            .join(RepositoryPermission, RepositoryPermission.account_id == Account.id)
            .where(RepositoryPermission.repository_id == repository_id)
            .order_by(Account.username)
        )
        return [(row[0], row[1]) for row in (await self.session.execute(stmt)).all()]

    # --- access tokens ---------------------------------------------------------------------
    async def token_by_hash(self, token_hash: str) -> tuple[AccessToken, Account] | None:
        stmt = (
            select(AccessToken, Account)
            .join(Account, Account.id == AccessToken.account_id)
            .where(AccessToken.token_hash == token_hash)
        )
        row = (await self.session.execute(stmt)).first()
        return (row[0], row[1]) if row else None

    async def add_token(self, token: AccessToken) -> AccessToken:
        self.session.add(token)
        await self.session.flush()
        return token

    async def tokens_of(self, account_id: int) -> Sequence[AccessToken]:
        stmt = (
            select(AccessToken).where(AccessToken.account_id == account_id).order_by(AccessToken.id)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def delete_token(self, account_id: int, token_id: int) -> bool:
        result = await self.session.execute(
            delete(AccessToken).where(
                AccessToken.id == token_id, AccessToken.account_id == account_id
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def touch_token(
        self,
        token_id: int,
        when: dt.datetime | None = None,
        *,
        older_than: dt.datetime | None = None,
    ) -> None:
        """Set ``last_used_at``; with ``older_than``, only if it is unset or older than that
        (another node may have touched it since it was read)."""
        stmt = update(AccessToken).where(AccessToken.id == token_id)
        if older_than is not None:
            stmt = stmt.where(
                or_(AccessToken.last_used_at.is_(None), AccessToken.last_used_at < older_than)
            )
        await self.session.execute(stmt.values(last_used_at=when or utcnow()))
