"""Queries for repository management (listing, visibility, state)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from moorage.db.models import OrgMember, Repository, RepositoryPermission, Visibility
from moorage.db.models.account import Account


class RepositoryAdminQueries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def visible(
        self,
        *,
        account_id: int | None,
        username: str | None,
        superuser: bool,
        namespace: str | None,
        public: bool,
        after_id: int,
        limit: int,
    ) -> Sequence[Repository]:
        """Repositories the account can read (plus public ones if asked), ordered by id."""
        stmt = select(Repository).where(Repository.id > after_id).order_by(Repository.id)
        if namespace:
            stmt = stmt.where(Repository.namespace == namespace)
        if not superuser:
            conditions = []
            if public or account_id is None:
                conditions.append(Repository.visibility == Visibility.PUBLIC)
            if account_id is not None:
                admin_orgs = (
                    select(Account.username)
                    .join(OrgMember, OrgMember.org_id == Account.id)
                    .where(OrgMember.account_id == account_id, OrgMember.role == "admin")
                )
                granted = select(RepositoryPermission.repository_id).where(
                    RepositoryPermission.account_id == account_id
                )
                conditions += [
                    Repository.namespace == username,
                    Repository.namespace.in_(admin_orgs),
                    Repository.id.in_(granted),
                ]
            stmt = stmt.where(or_(*conditions))
        return (await self.session.execute(stmt.limit(limit))).scalars().all()

    async def set_visibility(self, repository_id: int, visibility: Visibility) -> None:
        await self.session.execute(
            update(Repository).where(Repository.id == repository_id).values(visibility=visibility)
        )

    async def set_state(self, repository_id: int, state: int) -> None:
        await self.session.execute(
            update(Repository).where(Repository.id == repository_id).values(state=state)
        )

    async def set_description(self, repository_id: int, description: str | None) -> None:
        await self.session.execute(
            update(Repository).where(Repository.id == repository_id).values(description=description)
        )
