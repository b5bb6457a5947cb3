"""Queries used by garbage collection to find unreachable manifests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from moorage.db.models import (
    Blob,
    Manifest,
    ManifestBlob,
    ManifestChild,
    Repository,
    RepositoryBlob,
    Tag,
)


class GcQueries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def repository_ids(self) -> Sequence[int]:
        return (
            (await self.session.execute(select(Repository.id).order_by(Repository.id)))
            .scalars()
            .all()
        )

    async def manifests(
        self, repository_id: int
    ) -> Sequence[tuple[int, str, str | None, dt.datetime]]:
        stmt = select(
            Manifest.id, Manifest.digest, Manifest.subject_digest, Manifest.created_at
        ).where(Manifest.repository_id == repository_id)
        return [(r[0], r[1], r[2], r[3]) for r in (await self.session.execute(stmt)).all()]

    async def tagged_manifest_ids(self, repository_id: int) -> set[int]:
        stmt = select(Tag.manifest_id).where(
            Tag.repository_id == repository_id, Tag.lifetime_end_ms.is_(None)
        )
        return set((await self.session.execute(stmt)).scalars().all())

    async def child_edges(self, repository_id: int) -> Sequence[tuple[int, int]]:
        stmt = (
            select(ManifestChild.parent_id, ManifestChild.child_id)
            .join(Manifest, Manifest.id == ManifestChild.parent_id)
            .where(Manifest.repository_id == repository_id, ManifestChild.child_id.is_not(None))
        )
        return [(r[0], r[1]) for r in (await self.session.execute(stmt)).all() if r[1] is not None]

    async def delete_if_untagged(self, manifest_id: int) -> bool:
        """Delete a manifest unless, by now, a tag or an index points at it."""
        alive_tag = exists().where(Tag.manifest_id == manifest_id, Tag.lifetime_end_ms.is_(None))
        parent = exists().where(ManifestChild.child_id == manifest_id)
        result = await self.session.execute(
            delete(Manifest).where(Manifest.id == manifest_id, ~alive_tag, ~parent)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def still_collectable(
        self, blob_ids: Sequence[int], older_than: dt.datetime
    ) -> list[int]:
        """Those of ``blob_ids`` (locked by the caller) that no manifest references and that
        were not linked since ``older_than``, as committed now.

        On PostgreSQL the statement that locked them judged by its snapshot; a push that
        renewed a link (or a manifest that referenced a blob) and committed just before the
        lock was granted is seen only by a new statement like this one.
        """
        if not blob_ids:
            return []
        referenced = select(ManifestBlob.blob_id).where(ManifestBlob.blob_id == Blob.id)
        recently_linked = select(RepositoryBlob.blob_id).where(
            RepositoryBlob.blob_id == Blob.id, RepositoryBlob.linked_at >= older_than
        )
        stmt = select(Blob.id).where(
            Blob.id.in_(blob_ids), ~referenced.exists(), ~recently_linked.exists()
        )
        return list((await self.session.execute(stmt)).scalars().all())

    async def delete_blobs(self, blob_ids: Sequence[int]) -> None:
        """Delete blob rows (their repository links cascade); the caller holds their locks."""
        if blob_ids:
            await self.session.execute(delete(Blob).where(Blob.id.in_(blob_ids)))
