"""Queries on manifests, their blob references and their children."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from moorage.db.models import Manifest, ManifestBlob, ManifestChild


class ManifestQueries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, repository_id: int, digest: str) -> Manifest | None:
        stmt = select(Manifest).where(
            Manifest.repository_id == repository_id, Manifest.digest == digest
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get_many(self, repository_id: int, digests: list[str]) -> dict[str, int]:
        """digest -> manifest id for the given digests present in the repository."""
        if not digests:
            return {}
        stmt = select(Manifest.digest, Manifest.id).where(
            Manifest.repository_id == repository_id, Manifest.digest.in_(set(digests))
        )
        return {row[0]: row[1] for row in (await self.session.execute(stmt)).all()}

    async def insert(self, manifest: Manifest) -> Manifest:
        self.session.add(manifest)
        await self.session.flush()
        return manifest

    async def add_blob_refs(self, manifest_id: int, blob_ids: set[int]) -> None:
        self.session.add_all(ManifestBlob(manifest_id=manifest_id, blob_id=b) for b in blob_ids)
        await self.session.flush()

    async def add_children(self, parent_id: int, children: dict[str, int | None]) -> None:
        self.session.add_all(
            ManifestChild(parent_id=parent_id, child_digest=d, child_id=c)
            for d, c in children.items()
        )
        await self.session.flush()

    async def attach_child(self, repository_id: int, digest: str, child_id: int) -> None:
        """Fill in a sparse index's absent child once that child is stored."""
        parents = select(Manifest.id).where(Manifest.repository_id == repository_id)
        rows = await self.session.execute(
            select(ManifestChild).where(
                ManifestChild.child_digest == digest,
                ManifestChild.child_id.is_(None),
                ManifestChild.parent_id.in_(parents),
            )
        )
        for child in rows.scalars():
            child.child_id = child_id
        await self.session.flush()

    async def parents_of(self, manifest_id: int) -> Sequence[str]:
        stmt = (
            select(Manifest.digest)
            .join(ManifestChild, ManifestChild.parent_id == Manifest.id)
            .where(ManifestChild.child_id == manifest_id)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def referrers(
        self, repository_id: int, subject_digest: str, artifact_type: str | None
    ) -> Sequence[Manifest]:
        stmt = (
            select(Manifest)
            .where(
                Manifest.repository_id == repository_id, Manifest.subject_digest == subject_digest
            )
            .order_by(Manifest.id)
        )
        if artifact_type:
            stmt = stmt.where(Manifest.artifact_type == artifact_type)
        return (await self.session.execute(stmt)).scalars().all()

    async def present_children(self, manifest_id: int) -> Sequence[str]:
        stmt = select(ManifestChild.child_digest).where(
            ManifestChild.parent_id == manifest_id, ManifestChild.child_id.is_not(None)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def delete(self, manifest_id: int) -> None:
        await self.session.execute(delete(Manifest).where(Manifest.id == manifest_id))

    async def is_child(self, manifest_id: int) -> bool:
        stmt = select(exists().where(ManifestChild.child_id == manifest_id))
        return bool((await self.session.execute(stmt)).scalar())
