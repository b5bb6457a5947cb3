"""Read queries of `moorage fsck`: blobs, manifests and tags in pages, with what they reference."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, exists, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from moorage.db.models import (
    Blob,
    Manifest,
    ManifestBlob,
    ManifestChild,
    Repository,
    RepositoryBlob,
    Tag,
)


@dataclass(frozen=True, slots=True)
class BlobRow:
    id: int
    digest: str
    size: int
    referenced: bool  # by at least one manifest (of any repository)


@dataclass(frozen=True, slots=True)
class BlobRef:
    """A blob a manifest references, as recorded in manifest_blobs."""

    manifest_id: int
    digest: str
    size: int
    linked: bool  # linked into the manifest's repository


@dataclass(frozen=True, slots=True)
class ChildRef:
    parent_id: int
    digest: str
    child_id: int | None  # None: absent child of a sparse index
    child_repository_id: int | None  # None when no child row exists


class FsckQueries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def repositories(self, names: Sequence[str] | None) -> list[tuple[int, str]]:
        """(id, "namespace/name") of every repository, or of those named, by id."""
        stmt = select(Repository.id, Repository.namespace, Repository.name).order_by(Repository.id)
        if names is not None:
            pairs = [tuple(n.split("/", 1)) for n in names if "/" in n]
            if not pairs:
                return []
            stmt = stmt.where(tuple_(Repository.namespace, Repository.name).in_(pairs))
        return [(r[0], f"{r[1]}/{r[2]}") for r in (await self.session.execute(stmt)).all()]

    @staticmethod
    def _in_scope(repository_ids: Sequence[int] | None) -> ColumnElement[bool]:
        """Blobs referenced by a manifest of these repositories (every blob when None)."""
        if repository_ids is None:
            return Blob.id.is_not(None)
        scoped = (
            select(ManifestBlob.blob_id)
            .join(Manifest, Manifest.id == ManifestBlob.manifest_id)
            .where(Manifest.repository_id.in_(repository_ids))
        )
        return Blob.id.in_(scoped)

    async def blob_totals(self, repository_ids: Sequence[int] | None) -> tuple[int, int]:
        """(number of blobs, their total size) in scope."""
        stmt = select(func.count(Blob.id), func.coalesce(func.sum(Blob.size), 0)).where(
            self._in_scope(repository_ids)
        )
        row = (await self.session.execute(stmt)).one()
        return int(row[0]), int(row[1])

    async def blob_page(
        self, after_id: int, limit: int, repository_ids: Sequence[int] | None
    ) -> list[BlobRow]:
        referenced = exists().where(ManifestBlob.blob_id == Blob.id)
        stmt = (
            select(Blob.id, Blob.digest, Blob.size, referenced)
            .where(Blob.id > after_id, self._in_scope(repository_ids))
            .order_by(Blob.id)
            .limit(limit)
        )
        rows = (await self.session.execute(stmt)).all()
        return [BlobRow(r[0], r[1], r[2], bool(r[3])) for r in rows]

    async def blob(self, blob_id: int) -> BlobRow | None:
        """The blob row now (for re-checking a finding before it is reported)."""
        referenced = exists().where(ManifestBlob.blob_id == Blob.id)
        stmt = select(Blob.id, Blob.digest, Blob.size, referenced).where(Blob.id == blob_id)
        row = (await self.session.execute(stmt)).one_or_none()
        return None if row is None else BlobRow(row[0], row[1], row[2], bool(row[3]))

    async def reference_count(self, blob_id: int) -> int:
        stmt = select(func.count()).select_from(ManifestBlob).where(ManifestBlob.blob_id == blob_id)
        return int((await self.session.execute(stmt)).scalar_one())

    async def manifest_count(self, repository_ids: Sequence[int]) -> int:
        stmt = select(func.count(Manifest.id)).where(Manifest.repository_id.in_(repository_ids))
        return int((await self.session.execute(stmt)).scalar_one())

    async def alive_tags(self, repository_id: int) -> list[tuple[str, int, bool]]:
        """(name, manifest id, whether that manifest row exists) of the repository's tags."""
        stmt = (
            select(Tag.name, Tag.manifest_id, Manifest.id)
            .outerjoin(Manifest, Manifest.id == Tag.manifest_id)
            .where(Tag.repository_id == repository_id, Tag.lifetime_end_ms.is_(None))
            .order_by(Tag.name)
        )
        return [(r[0], r[1], r[2] is not None) for r in (await self.session.execute(stmt)).all()]

    async def manifests(self, manifest_ids: Sequence[int]) -> Sequence[Manifest]:
        stmt = select(Manifest).where(Manifest.id.in_(manifest_ids)).order_by(Manifest.id)
        return (await self.session.execute(stmt)).scalars().all()

    async def blob_refs(self, repository_id: int, manifest_ids: Sequence[int]) -> list[BlobRef]:
        stmt = (
            select(ManifestBlob.manifest_id, Blob.digest, Blob.size, RepositoryBlob.blob_id)
            .join(Blob, Blob.id == ManifestBlob.blob_id)
            .outerjoin(
                RepositoryBlob,
                and_(
                    RepositoryBlob.blob_id == Blob.id,
                    RepositoryBlob.repository_id == repository_id,
                ),
            )
            .where(ManifestBlob.manifest_id.in_(manifest_ids))
        )
        rows = (await self.session.execute(stmt)).all()
        return [BlobRef(r[0], r[1], r[2], r[3] is not None) for r in rows]

    async def child_refs(self, manifest_ids: Sequence[int]) -> list[ChildRef]:
        child = aliased(Manifest)
        stmt = (
            select(
                ManifestChild.parent_id,
                ManifestChild.child_digest,
                ManifestChild.child_id,
                child.repository_id,
            )
            .outerjoin(child, child.id == ManifestChild.child_id)
            .where(ManifestChild.parent_id.in_(manifest_ids))
        )
        rows = (await self.session.execute(stmt)).all()
        return [ChildRef(r[0], r[1], r[2], r[3]) for r in rows]

    async def manifest_ids_by_digest(
        self, repository_id: int, digests: Sequence[str]
    ) -> dict[str, int]:
        if not digests:
            return {}
        stmt = select(Manifest.digest, Manifest.id).where(
            Manifest.repository_id == repository_id, Manifest.digest.in_(set(digests))
        )
        return {r[0]: r[1] for r in (await self.session.execute(stmt)).all()}
