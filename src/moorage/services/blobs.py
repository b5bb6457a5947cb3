"""Blob reads, deletes, mounts, and the one place a verified blob becomes visible."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

from moorage.db.engine import Database
from moorage.db.queries.blobs import BlobQueries
from moorage.errors import BlobUnknown, Unsupported
from moorage.oci.digest import Digest
from moorage.services.repositories import RepoRef
from moorage.storage import paths
from moorage.storage.base import StorageDriver


@dataclass(frozen=True, slots=True)
class BlobInfo:
    digest: Digest
    size: int


@dataclass(frozen=True, slots=True)
class VerifiedBlob:
    """Bytes whose digest and size were checked, waiting in ``sources`` (in order)."""

    digest: Digest
    size: int
    sources: tuple[str, ...]


class BlobService:
    def __init__(self, db: Database, storage: StorageDriver) -> None:
        self.db = db
        self.storage = storage

    async def stat(self, repo: RepoRef, digest: Digest) -> BlobInfo:
        async with self.db.transaction(readonly=True) as session:
            blob = await BlobQueries(session).get_linked(repo.id, str(digest))
        if blob is None:
            raise BlobUnknown(f"blob {digest} not found in {repo.full_name}")
        return BlobInfo(digest, blob.size)

    def read(
        self, digest: Digest, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        return self.storage.read(paths.blob_key(digest), offset, length)

    async def redirect_url(self, digest: Digest, expires_in: int = 600) -> str | None:
        return await self.storage.redirect_url(paths.blob_key(digest), expires_in)

    async def delete(self, repo: RepoRef, digest: Digest) -> None:
        """Unlink the blob from the repository; `moorage gc` reclaims the bytes later."""
        async with self.db.transaction() as session:
            queries = BlobQueries(session)
            blob = await queries.get_linked(repo.id, str(digest))
            if blob is None:
                raise BlobUnknown(f"blob {digest} not found in {repo.full_name}")
            if await queries.referenced_in_repository(repo.id, blob.id):
                raise Unsupported(
                    f"blob {digest} is referenced by a manifest in {repo.full_name}; "
                    "delete the manifest first"
                )
            await queries.unlink(repo.id, blob.id)

    async def mount(self, repo: RepoRef, digest: Digest, source: RepoRef) -> BlobInfo | None:
        """Link a blob of ``source`` into ``repo`` without copying. None if source lacks it."""
        async with self.db.transaction() as session:
            queries = BlobQueries(session)
            blob = await queries.get_linked(source.id, str(digest))
            if blob is None:
                return None
            await queries.link(repo.id, blob.id)
            return BlobInfo(digest, blob.size)

    async def link_existing(self, repo: RepoRef, digests: Iterable[Digest]) -> set[str]:
        """Link blobs stored for any repository into ``repo``, in one transaction.

        Returns the digests now linked; the others are not stored (or their bytes are gone)
        and must be fetched.
        """
        async with self.db.transaction() as session:
            queries = BlobQueries(session)
            rows = await queries.by_digests(str(d) for d in digests)
            sizes = await asyncio.gather(
                *(self.storage.stat(paths.blob_key(Digest.parse(d))) for d in rows)
            )
            present = [blob for blob, size in zip(rows.values(), sizes, strict=True)
                       if size == blob.size]  # fmt: skip
            await queries.link(repo.id, *(blob.id for blob in present))
        return {blob.digest for blob in present}

    async def commit(self, repo: RepoRef, digest: Digest, size: int, sources: list[str]) -> None:
        """Make verified bytes (in ``sources``, in order) the blob ``digest`` of ``repo``."""
        await self.commit_many(repo, [VerifiedBlob(digest, size, tuple(sources))])

    async def commit_many(self, repo: RepoRef, blobs: Sequence[VerifiedBlob]) -> None:
        """Make several verified blobs visible in ``repo`` at once (one transaction).

        The blob rows are created and locked first, then the bytes are moved into place, then
        the repository links are written, all in one transaction: garbage collection, which
        takes the same locks, can never delete bytes that a commit is making visible.
        """
        if not blobs:
            return
        async with self.db.transaction() as session:
            queries = BlobQueries(session)
            rows = await queries.lock_or_create({str(b.digest): b.size for b in blobs})
            await asyncio.gather(*(self._place(blob) for blob in blobs))
            await queries.link(repo.id, *(row.id for row in rows.values()))

    async def _place(self, blob: VerifiedBlob) -> None:
        """Move a verified blob's bytes to their content address (or drop a duplicate)."""
        key = paths.blob_key(blob.digest)
        if await self.storage.stat(key) == blob.size:
            for source in blob.sources:
                await self.storage.delete(source)
        elif blob.sources:
            await self.storage.compose(list(blob.sources), key)
        else:  # an empty blob whose upload never received a chunk
            await self.storage.write(key, _no_chunks())


async def _no_chunks() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator
