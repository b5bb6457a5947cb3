"""Queries for repository permission views (organization membership of grantees)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from moorage.db.models import OrgMember


class PermissionQueries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def org_member_ids(self, org_id: int, account_ids: Iterable[int]) -> set[int]:
        """The subset of ``account_ids`` that are members (any role) of the organization."""
        ids = set(account_ids)
        if not ids:
            return set()
        stmt = select(OrgMember.account_id).where(
            OrgMember.org_id == org_id, OrgMember.account_id.in_(ids)
        )
        return set((await self.session.execute(stmt)).scalars().all())
