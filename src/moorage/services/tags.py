"""Tag history and tag changes for /api/v1 (Quay's listRepoTags, changeTag, deleteFullTag)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from moorage.db.engine import Database
from moorage.db.models import Repository
from moorage.db.queries.manifests import ManifestQueries
from moorage.db.queries.repositories import RepositoryQueries
from moorage.db.queries.tag_history import TagHistoryQueries
from moorage.db.queries.tags import TagQueries
from moorage.errors import NotFound
from moorage.oci import mediatypes as mt
from moorage.oci.reference import validate_tag
from moorage.services.audit import Actor, record

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class TagEntry:
    name: str
    manifest_digest: str
    is_manifest_list: bool
    size: int
    start_ms: int
    end_ms: int | None


@dataclass(frozen=True, slots=True)
class TagHistoryPage:
    tags: list[TagEntry]
    page: int
    has_additional: bool


async def _repository(session: AsyncSession, namespace: str, name: str) -> Repository:
    repo = await RepositoryQueries(session).get(namespace, name)
    if repo is None:
        raise NotFound("Not Found")
    return repo


class TagService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def history(
        self,
        namespace: str,
        name: str,
        *,
        page: int = 1,
        limit: int = DEFAULT_PAGE_SIZE,
        specific_tag: str | None = None,
        active_only: bool = False,
    ) -> TagHistoryPage:
        """Alive and ended tag rows, newest first; ``page`` is 1-based, ``limit`` at most 100."""
        page = max(1, page)
        limit = min(MAX_PAGE_SIZE, max(1, limit))
        async with self.db.transaction(readonly=True) as session:
            repo = await _repository(session, namespace, name)
            queries = TagHistoryQueries(session)
            rows = await queries.page(
                repo.id,
                offset=(page - 1) * limit,
                limit=limit + 1,
                name=specific_tag or None,
                alive_at_ms=now_ms() if active_only else None,
            )
            more = len(rows) > limit
            rows = rows[:limit]
            sizes = await queries.blob_sizes([r.manifest_id for r in rows])
        tags = [
            TagEntry(
                name=r.name,
                manifest_digest=r.manifest_digest,
                is_manifest_list=r.media_type in mt.INDEX_TYPES,
                # Quay reports the layers' size; an index references no blobs: its own size.
                size=sizes.get(r.manifest_id, r.manifest_size),
                start_ms=r.lifetime_start_ms,
                end_ms=r.lifetime_end_ms,
            )
            for r in rows
        ]
        return TagHistoryPage(tags, page, more)

    async def change(
        self, namespace: str, name: str, tag: str, manifest_digest: str, actor: Actor
    ) -> None:
        """Create ``tag`` or move it to a manifest stored in the repository (404 otherwise)."""
        validate_tag(tag)
        async with self.db.transaction() as session:
            repo = await _repository(session, namespace, name)
            manifest = await ManifestQueries(session).get(repo.id, manifest_digest)
            if manifest is None:
                raise NotFound("Not Found")
            tags = TagQueries(session)
            previous = await tags.alive_manifest(repo.id, tag)
            if not await tags.set(repo.id, tag, manifest.id, now_ms()):
                return
            record(
                session,
                "move_tag" if previous is not None else "create_tag",
                actor,
                namespace=namespace,
                repository=name,
                metadata={
                    "username": actor.principal.name,
                    "tag": tag,
                    "manifest_digest": manifest.digest,
                    "original_manifest_digest": previous.digest if previous else None,
                },
            )

    async def delete(self, namespace: str, name: str, tag: str, actor: Actor) -> None:
        """End the alive ``tag`` (its history row stays); 404 when it is not alive."""
        async with self.db.transaction() as session:
            repo = await _repository(session, namespace, name)
            if not await TagQueries(session).end(repo.id, tag, now_ms()):
                raise NotFound("Not Found")
            record(
                session,
                "delete_tag",
                actor,
                namespace=namespace,
                repository=name,
                metadata={"username": actor.principal.name, "tag": tag},
            )
