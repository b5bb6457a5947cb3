"""Tag history and tag changes for /api/v1 (Quay's listRepoTags, changeTag, deleteFullTag)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from moorage.db.engine import Database
from moorage.db.models import Manifest, Repository
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
MAX_CONFIG_BYTES = 1024 * 1024  # larger image configs are not read for their architecture
CONFIG_CACHE_SIZE = 4096
CONFIG_READS = 8  # image configs read from storage at once for one page of tags
IMAGE_CONFIG_TYPES = frozenset(
    {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
)

# Reads a blob (an image config) by digest; None when it is not available.
ConfigReader = Callable[[str], Awaitable[bytes | None]]


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
    architectures: tuple[str, ...] = ()


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


def platform_name(platform: Any) -> str | None:
    """``arch`` or ``arch/variant`` of an OCI platform object; None for unknown/attestations."""
    if not isinstance(platform, dict):
        return None
    arch = platform.get("architecture")
    if not isinstance(arch, str) or not arch or arch == "unknown":
        return None
    variant = platform.get("variant")
    return f"{arch}/{variant}" if isinstance(variant, str) and variant else arch


def _unique(names: Sequence[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for n in names if n))


def _document(payload: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def index_architectures(payload: bytes) -> tuple[str, ...]:
    """The platforms an image index lists, in its order (attestation entries left out)."""
    entries = _document(payload).get("manifests")
    if not isinstance(entries, list):
        return ()
    return _unique([platform_name(e.get("platform")) for e in entries if isinstance(e, dict)])


def image_config_digest(payload: bytes) -> str | None:
    """The config blob of an image manifest when it is an image config small enough to read."""
    config = _document(payload).get("config")
    if not isinstance(config, dict) or config.get("mediaType") not in IMAGE_CONFIG_TYPES:
        return None
    size, digest = config.get("size"), config.get("digest")
    if not isinstance(size, int) or size > MAX_CONFIG_BYTES or not isinstance(digest, str):
        return None
    return digest


async def _payloads(
    session: AsyncSession, manifest_ids: Sequence[int]
) -> dict[int, tuple[str, bytes]]:
    """manifest id -> (media type, payload) for the manifests of one page of tags."""
    if not manifest_ids:
        return {}
    stmt = select(Manifest.id, Manifest.media_type, Manifest.payload).where(
        Manifest.id.in_(set(manifest_ids))
    )
    return {row[0]: (row[1], bytes(row[2])) for row in (await session.execute(stmt)).all()}


class TagService:
    def __init__(self, db: Database) -> None:
        self.db = db
        # image config digest -> its architectures (content-addressed, so never stale)
        self._config_arch: dict[str, tuple[str, ...]] = {}

    async def history(
        self,
        namespace: str,
        name: str,
        *,
        page: int = 1,
        limit: int = DEFAULT_PAGE_SIZE,
        specific_tag: str | None = None,
        active_only: bool = False,
        read_config: ConfigReader | None = None,
    ) -> TagHistoryPage:
        """Alive and ended tag rows, newest first; ``page`` is 1-based, ``limit`` at most 100.

        Each entry's ``architectures`` come from the index's platforms or, for an image, from
        its config blob (read with ``read_config``; without it images report none).
        """
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
            payloads = await _payloads(session, [r.manifest_id for r in rows])
        arches = await self._architectures(payloads, read_config)
        tags = [
            TagEntry(
                name=r.name,
                manifest_digest=r.manifest_digest,
                is_manifest_list=r.media_type in mt.INDEX_TYPES,
                # Quay reports the layers' size; an index references no blobs: its own size.
                size=sizes.get(r.manifest_id, r.manifest_size),
                start_ms=r.lifetime_start_ms,
                end_ms=r.lifetime_end_ms,
                architectures=arches.get(r.manifest_id, ()),
            )
            for r in rows
        ]
        return TagHistoryPage(tags, page, more)

    async def _architectures(
        self, payloads: dict[int, tuple[str, bytes]], read_config: ConfigReader | None
    ) -> dict[int, tuple[str, ...]]:
        out: dict[int, tuple[str, ...]] = {}
        configs: dict[int, str] = {}
        for manifest_id, (media_type, payload) in payloads.items():
            if media_type in mt.INDEX_TYPES:
                out[manifest_id] = index_architectures(payload)
            elif (digest := image_config_digest(payload)) is not None:
                configs[manifest_id] = digest
        if read_config is not None:
            await self._load_configs(set(configs.values()), read_config)
        for manifest_id, digest in configs.items():
            if digest in self._config_arch:
                out[manifest_id] = self._config_arch[digest]
        return out

    async def _load_configs(self, digests: set[str], read_config: ConfigReader) -> None:
        """Read the image configs not cached yet, a few at a time, and cache their platform."""
        limit = asyncio.Semaphore(CONFIG_READS)

        async def load(digest: str) -> None:
            async with limit:
                data = await read_config(digest)
            if data is None:
                return
            if len(self._config_arch) >= CONFIG_CACHE_SIZE:
                self._config_arch.pop(next(iter(self._config_arch)))
            self._config_arch[digest] = _unique([platform_name(_document(data))])

        await asyncio.gather(*(load(d) for d in digests - self._config_arch.keys()))

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
