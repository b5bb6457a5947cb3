"""Queries on blobs and repository links."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from moorage.db.base import utcnow
from moorage.db.engine import insert_ignore, insert_or_update, supports_row_locks
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

    async def lock_or_create(self, sizes: dict[str, int]) -> dict[str, Blob]:
        """Insert the missing blob rows of ``sizes`` (digest -> size) and hold them all (row
        locks on PostgreSQL, taken in digest order) until commit; digest -> row.

        Garbage collection takes the same lock before deleting a blob's bytes, so a blob being
        committed by an upload or a mirror can never be collected half-way.
        """
        found: dict[str, Blob] = {}
        for _attempt in range(3):
            missing = sorted(d for d in sizes if d not in found)
            now = utcnow()
            await self.session.execute(
                insert_ignore(
                    self.session,
                    Blob.__table__,
                    [{"digest": d, "size": sizes[d], "created_at": now} for d in missing],
                )
            )
            stmt = select(Blob).where(Blob.digest.in_(missing)).order_by(Blob.digest)
            if supports_row_locks(self.session):
                stmt = stmt.with_for_update()
            rows = (await self.session.execute(stmt)).scalars()
            found.update((blob.digest, blob) for blob in rows)
            if len(found) == len(sizes):
                return found
            # PostgreSQL: the insert found a row, then garbage collection deleted it while we
            # waited for its lock. It is gone now: the next insert creates it afresh.
        raise RuntimeError("a blob row vanished three times while being locked")

    async def claim_absent(self, digest: str) -> bool:
        """Hold ``digest`` while it has no blob row, to delete its bytes safely.

        Inserts a placeholder row; True when inserted (no row existed). Until the transaction
        ends, a commit of the same digest (``lock_or_create``) waits, so the bytes cannot become
        visible while they are deleted. The caller deletes the placeholder (``release``) before
        committing. False: a blob row exists (or is being created), the bytes are in use.
        """
        result = await self.session.execute(
            insert_ignore(
                self.session,
                Blob.__table__,
                {"digest": digest, "size": 0, "created_at": utcnow()},
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def release(self, digests: Iterable[str]) -> None:
        """Delete the placeholder rows of ``claim_absent``."""
        wanted = list(digests)
        if wanted:
            await self.session.execute(delete(Blob).where(Blob.digest.in_(wanted)))

    async def existing(self, digests: Iterable[str]) -> set[str]:
        """Those of ``digests`` that have a blob row."""
        wanted = list(set(digests))
        if not wanted:
            return set()
        stmt = select(Blob.digest).where(Blob.digest.in_(wanted))
        return set((await self.session.execute(stmt)).scalars().all())

    async def lock_unreferenced(self, blob_id: int) -> Blob | None:
        """The blob row, locked (PostgreSQL; SQLite writers hold the database), if it still
        exists and no manifest references it."""
        stmt = select(Blob).where(Blob.id == blob_id)
        if supports_row_locks(self.session):
            stmt = stmt.with_for_update()
        blob = (await self.session.execute(stmt)).scalar_one_or_none()
        # A separate statement: on PostgreSQL it sees what committed while we waited for the
        # lock (a manifest referencing the blob), which the locking statement's snapshot may not.
        referenced = select(exists().where(ManifestBlob.blob_id == blob_id))
        if blob is None or (await self.session.execute(referenced)).scalar():
            return None
        return blob

    async def link(self, repository_id: int, *blob_ids: int) -> None:
        """Link blobs into the repository; an existing link is renewed (``linked_at``): garbage
        collection spares blobs linked within its grace period, and a blob pushed again must
        be spared until the manifest that will reference it arrives."""
        if not blob_ids:
            return
        now = utcnow()
        await self.session.execute(
            insert_or_update(
                self.session,
                RepositoryBlob.__table__,
                [
                    {"repository_id": repository_id, "blob_id": blob_id, "linked_at": now}
                    for blob_id in sorted(set(blob_ids))
                ],
                keys=["repository_id", "blob_id"],
                update=["linked_at"],
            )
        )

    async def by_digests(self, digests: Iterable[str]) -> dict[str, Blob]:
        """digest -> row for those of ``digests`` that have a blob row."""
        wanted = list(set(digests))
        if not wanted:
            return {}
        stmt = select(Blob).where(Blob.digest.in_(wanted))
        return {blob.digest: blob for blob in (await self.session.execute(stmt)).scalars()}

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
