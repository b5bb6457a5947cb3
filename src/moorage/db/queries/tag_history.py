"""Queries on tag history for /api/v1: alive and ended tag rows with their manifests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from moorage.db.models import Blob, Manifest, ManifestBlob, Tag


@dataclass(frozen=True, slots=True)
class TagHistoryRow:
    """One tag row (alive or ended) and the manifest it pointed at. No manifest payload."""

    name: str
    lifetime_start_ms: int
    lifetime_end_ms: int | None
    manifest_id: int
    manifest_digest: str
    media_type: str
    manifest_size: int


class TagHistoryQueries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def page(
        self,
        repository_id: int,
        *,
        offset: int,
        limit: int,
        name: str | None = None,
        alive_at_ms: int | None = None,
    ) -> list[TagHistoryRow]:
        """Newest first (Quay's order). ``alive_at_ms`` keeps only tags alive at that instant."""
        stmt = (
            select(
                Tag.name,
                Tag.lifetime_start_ms,
                Tag.lifetime_end_ms,
                Manifest.id,
                Manifest.digest,
                Manifest.media_type,
                Manifest.size,
            )
            .join(Manifest, Manifest.id == Tag.manifest_id)
            .where(Tag.repository_id == repository_id)
            .order_by(Tag.lifetime_start_ms.desc(), Tag.name, Tag.id.desc())
            .offset(offset)
            .limit(limit)
        )
        if name is not None:
            stmt = stmt.where(Tag.name == name)
        if alive_at_ms is not None:
            stmt = stmt.where(
                or_(Tag.lifetime_end_ms.is_(None), Tag.lifetime_end_ms > alive_at_ms),
                Tag.lifetime_start_ms <= alive_at_ms,
            )
        rows = (await self.session.execute(stmt)).all()
        return [TagHistoryRow(*row) for row in rows]

    async def blob_sizes(self, manifest_ids: Sequence[int]) -> dict[int, int]:
        """manifest id -> total size of the blobs (config and layers) it references."""
        if not manifest_ids:
            return {}
        stmt = (
            select(ManifestBlob.manifest_id, func.sum(Blob.size))
            .join(Blob, Blob.id == ManifestBlob.blob_id)
            .where(ManifestBlob.manifest_id.in_(set(manifest_ids)))
            .group_by(ManifestBlob.manifest_id)
        )
        return {row[0]: int(row[1] or 0) for row in (await self.session.execute(stmt)).all()}
