"""The local side of a sync: alive tags, pruning and rollback, in the mirrored repository."""

from __future__ import annotations

from sqlalchemy import select

from moorage.db.engine import Database
from moorage.db.models import Manifest, Tag
from moorage.db.queries.manifests import ManifestQueries
from moorage.db.queries.tags import TagQueries
from moorage.services.manifests import now_ms


async def alive_tags(db: Database, repository_id: int) -> dict[str, str]:
    """tag -> manifest digest for every alive tag of the repository."""
    async with db.transaction(readonly=True) as session:
        rows = await session.execute(
            select(Tag.name, Manifest.digest)
            .join(Manifest, Manifest.id == Tag.manifest_id)
            .where(Tag.repository_id == repository_id, Tag.lifetime_end_ms.is_(None))
        )
        return {row[0]: row[1] for row in rows.all()}


async def prune(db: Database, repository_id: int, tags: list[str]) -> int:
    """End the given tags (their history is kept). Returns how many were alive."""
    if not tags:
        return 0
    ended = 0
    async with db.transaction() as session:
        queries = TagQueries(session)
        stamp = now_ms()
        for tag in tags:
            ended += await queries.end(repository_id, tag, stamp)
    return ended


async def restore(db: Database, repository_id: int, previous: dict[str, str | None]) -> None:
    """Point each tag back at its previous manifest digest (None: the tag did not exist)."""
    async with db.transaction() as session:
        tags = TagQueries(session)
        manifests = ManifestQueries(session)
        stamp = now_ms()
        for name, digest in previous.items():
            if digest is None:
                await tags.end(repository_id, name, stamp)
                continue
            manifest = await manifests.get(repository_id, digest)
            if manifest is not None:
                await tags.set(repository_id, name, manifest.id, stamp)
