"""Queries on blobs and repository links."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from moorage.db.base import utcnow
from moorage.db.engine import insert_ignore, supports_row_locks
from moorage.db.models import Blob, Manifest, ManifestBlob, RepositoryBlob


class BlobQueries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, digest: str) -> Blob | None:
        stmt = select(Blob).where(Blob.digest == digest)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get_linked(self, repository_id: int, digest: str) -> Blob | None:
        stmt = (
            select(Blob)
            .join(RepositoryBlob, RepositoryBlob.blob_id == Blob.id)
            .where(RepositoryBlob.repository_id == repository_id, Blob.digest == digest)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def linked_digests(self, repository_id: int, digests: Iterable[str]) -> dict[str, int]:
        """digest -> blob id for the given digests that are linked into the repository."""
        wanted = list(set(digests))
        if not wanted:
            return {}
        stmt = (
            select(Blob.digest, Blob.id)
            .join(RepositoryBlob, RepositoryBlob.blob_id == Blob.id)
            .where(RepositoryBlob.repository_id == repository_id, Blob.digest.in_(wanted))
        )
        return {row[0]: row[1] for row in (await self.session.execute(stmt)).all()}

    async def lock_or_create(self, digest: str, size: int) -> Blob:
        """Insert the blob row if missing and hold it (row lock on PostgreSQL) until commit.

        Garbage collection takes the same lock before deleting a blob's bytes, so a blob being
        committed by an upload or a mirror can never be collected half-way.
        """
        await self.session.execute(
            insert_ignore(
                self.session,
                Blob.__table__,
                {"digest": digest, "size": size, "created_at": utcnow()},
            )
        )
        stmt = select(Blob).where(Blob.digest == digest)
        if supports_row_locks(self.session):
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one()

    async def link(self, repository_id: int, blob_id: int) -> None:
        await self.session.execute(
            insert_ignore(
                self.session,
                RepositoryBlob.__table__,
                {"repository_id": repository_id, "blob_id": blob_id, "linked_at": utcnow()},
            )
        )

    async def unlink(self, repository_id: int, blob_id: int) -> None:
        await self.session.execute(
            delete(RepositoryBlob).where(
                RepositoryBlob.repository_id == repository_id, RepositoryBlob.blob_id == blob_id
            )
        )

    async def referenced_in_repository(self, repository_id: int, blob_id: int) -> bool:
        stmt = select(
            exists()
            .where(ManifestBlob.blob_id == blob_id)
            .where(ManifestBlob.manifest_id == Manifest.id)
            .where(Manifest.repository_id == repository_id)
        )
        return bool((await self.session.execute(stmt)).scalar())

    async def collectable(self, older_than: dt.datetime, limit: int) -> Sequence[Blob]:
        """Blobs referenced by no manifest and linked into no repository since ``older_than``."""
        referenced = select(ManifestBlob.blob_id).where(ManifestBlob.blob_id == Blob.id)
        recently_linked = select(RepositoryBlob.blob_id).where(
            RepositoryBlob.blob_id == Blob.id, RepositoryBlob.linked_at >= older_than
        )
        stmt = (
            select(Blob)
            .where(Blob.created_at < older_than)
            .where(~referenced.exists())
            .where(~recently_linked.exists())
            .order_by(Blob.id)
            .limit(limit)
        )
        if supports_row_locks(self.session):
            stmt = stmt.with_for_update(skip_locked=True)
        return (await self.session.execute(stmt)).scalars().all()

    async def delete(self, blob_id: int) -> None:
        await self.session.execute(delete(Blob).where(Blob.id == blob_id))
