"""Queries on the audit log (Quay's usage logs), newest first, keyset-paginated by id."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from moorage.db.models import AuditLog


class LogQueries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lookup(
        self,
        *,
        namespace: str,
        repository: str | None,
        start: dt.datetime,
        end: dt.datetime,
        before_id: int | None,
        limit: int,
    ) -> Sequence[AuditLog]:
        """Entries of ``namespace`` (or one repository in it) with start <= created_at < end."""
        stmt = (
            select(AuditLog)
            .where(
                AuditLog.namespace == namespace,
                AuditLog.created_at >= start,
                AuditLog.created_at < end,
            )
            .order_by(AuditLog.id.desc())
            .limit(limit)
        )
        if repository is not None:
            stmt = stmt.where(AuditLog.repository == repository)
        if before_id is not None:
            stmt = stmt.where(AuditLog.id < before_id)
        return (await self.session.execute(stmt)).scalars().all()
