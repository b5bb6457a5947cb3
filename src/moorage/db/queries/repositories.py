"""Queries on repositories."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from moorage.db.base import utcnow
from moorage.db.engine import insert_ignore
from moorage.db.models import Repository, Visibility
from moorage.db.queries.tags import ascii_order


class RepositoryQueries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, namespace: str, name: str) -> Repository | None:
        stmt = select(Repository).where(Repository.namespace == namespace, Repository.name == name)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get_or_create(
        self, namespace: str, name: str, visibility: Visibility = Visibility.PRIVATE
    ) -> tuple[Repository, bool]:
        """Race-safe create-on-push: returns (repository, created)."""
        existing = await self.get(namespace, name)
        if existing is not None:
            return existing, False
        table = Repository.__table__
        stmt = insert_ignore(
            self.session,
            table,
            {
                "namespace": namespace,
                "name": name,
                "visibility": visibility.value,
                "state": 0,
                "created_at": utcnow(),
            },
        )
        result = await self.session.execute(stmt)
        repo = await self.get(namespace, name)
        assert repo is not None
        return repo, bool(result.rowcount)  # type: ignore[attr-defined]

    async def catalog(self, last: str | None, limit: int) -> Sequence[tuple[str, str]]:
        ns_col = ascii_order(self.session, Repository.namespace)
        name_col = ascii_order(self.session, Repository.name)
        stmt = select(Repository.namespace, Repository.name).order_by(ns_col, name_col)
        if last:
            namespace, _, name = last.partition("/")
            stmt = stmt.where(or_(ns_col > namespace, and_(ns_col == namespace, name_col > name)))
        rows = (await self.session.execute(stmt.limit(limit))).all()
        return [(r[0], r[1]) for r in rows]

    async def delete(self, repository_id: int) -> None:
        await self.session.execute(delete(Repository).where(Repository.id == repository_id))
