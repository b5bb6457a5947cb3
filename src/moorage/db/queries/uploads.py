"""Queries on upload sessions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from moorage.db.base import utcnow
from moorage.db.models import Upload


class UploadQueries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, upload_id: str, repository_id: int) -> Upload:
        upload = Upload(
            id=upload_id, repository_id=repository_id, size=0, chunk_count=0, chunk_keys=[]
        )
        self.session.add(upload)
        await self.session.flush()
        return upload

    async def get(self, repository_id: int, upload_id: str) -> Upload | None:
        stmt = select(Upload).where(Upload.id == upload_id, Upload.repository_id == repository_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def advance(self, upload: Upload, chunk_key: str, added: int) -> bool:
        """Record one more chunk, only if nobody else appended since ``upload`` was read."""
        result = await self.session.execute(
            update(Upload)
            .where(
                Upload.id == upload.id,
                Upload.size == upload.size,
                Upload.chunk_count == upload.chunk_count,
            )
            .values(
                size=upload.size + added,
                chunk_count=upload.chunk_count + 1,
                chunk_keys=[*upload.chunk_keys, chunk_key],
                updated_at=utcnow(),
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def delete(self, upload_id: str) -> bool:
        result = await self.session.execute(delete(Upload).where(Upload.id == upload_id))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def stale(self, before: dt.datetime, limit: int) -> Sequence[str]:
        stmt = select(Upload.id).where(Upload.updated_at < before).limit(limit)
        return (await self.session.execute(stmt)).scalars().all()

    async def stale_sessions(self, before: dt.datetime) -> Sequence[tuple[str, int, dt.datetime]]:
        """(id, size, updated_at) of every session untouched since ``before``, oldest first."""
        stmt = (
            select(Upload.id, Upload.size, Upload.updated_at)
            .where(Upload.updated_at < before)
            .order_by(Upload.updated_at)
        )
        return [(r[0], r[1], r[2]) for r in (await self.session.execute(stmt)).all()]

    async def existing_ids(self, upload_ids: Iterable[str]) -> set[str]:
        wanted = list(set(upload_ids))
        if not wanted:
            return set()
        stmt = select(Upload.id).where(Upload.id.in_(wanted))
        return set((await self.session.execute(stmt)).scalars().all())

    async def delete_if_stale(self, upload_id: str, before: dt.datetime) -> bool:
        """Delete the session unless a chunk arrived since ``before``."""
        result = await self.session.execute(
            delete(Upload).where(Upload.id == upload_id, Upload.updated_at < before)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
