"""Queries on tags. A tag move ends the alive row and starts a new one (history is kept)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from moorage.db.models import Manifest, Tag


def ascii_order(
    session: AsyncSession, column: InstrumentedAttribute[str]
) -> ColumnElement[str] | InstrumentedAttribute[str]:
    """``column`` compared byte by byte, as the OCI spec orders tags ("ASCIIbetical").

    SQLite compares strings that way already; PostgreSQL follows the database collation
    (e.g. en_US sorts "a" < "B" < "b") unless told to use "C".
    """
    if session.get_bind().dialect.name == "postgresql":
        return column.collate("C")
    return column


class TagQueries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def alive(self, repository_id: int, name: str) -> Tag | None:
        stmt = select(Tag).where(
            Tag.repository_id == repository_id, Tag.name == name, Tag.lifetime_end_ms.is_(None)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def alive_manifest(self, repository_id: int, name: str) -> Manifest | None:
        stmt = (
            select(Manifest)
            .join(Tag, Tag.manifest_id == Manifest.id)
            .where(
                Tag.repository_id == repository_id,
                Tag.name == name,
                Tag.lifetime_end_ms.is_(None),
            )
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def names(self, repository_id: int, last: str | None, limit: int | None) -> list[str]:
        name = ascii_order(self.session, Tag.name)
        stmt = (
            select(Tag.name)
            .where(Tag.repository_id == repository_id, Tag.lifetime_end_ms.is_(None))
            .order_by(name)
        )
        if last:
            stmt = stmt.where(name > last)
        if limit is not None:
            stmt = stmt.limit(limit)
        return list((await self.session.execute(stmt)).scalars().all())

    async def set(self, repository_id: int, name: str, manifest_id: int, now_ms: int) -> bool:
        """Point ``name`` at ``manifest_id``. Returns False when it already pointed there."""
        current = await self.alive(repository_id, name)
        if current is not None:
            if current.manifest_id == manifest_id:
                return False
            current.lifetime_end_ms = now_ms
            await self.session.flush()
        self.session.add(
            Tag(
                repository_id=repository_id,
                name=name,
                manifest_id=manifest_id,
                lifetime_start_ms=now_ms,
            )
        )
        await self.session.flush()
        return True

    async def end(self, repository_id: int, name: str, now_ms: int) -> bool:
        result = await self.session.execute(
            update(Tag)
            .where(
                Tag.repository_id == repository_id,
                Tag.name == name,
                Tag.lifetime_end_ms.is_(None),
            )
            .values(lifetime_end_ms=now_ms)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def end_for_manifest(self, manifest_id: int, now_ms: int) -> None:
        await self.session.execute(
            update(Tag)
            .where(Tag.manifest_id == manifest_id, Tag.lifetime_end_ms.is_(None))
            .values(lifetime_end_ms=now_ms)
        )

    async def alive_for_manifest(self, manifest_id: int) -> Sequence[str]:
        stmt = select(Tag.name).where(Tag.manifest_id == manifest_id, Tag.lifetime_end_ms.is_(None))
        return (await self.session.execute(stmt)).scalars().all()
