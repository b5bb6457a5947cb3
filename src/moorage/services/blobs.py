"""Blob reads, deletes, mounts, and the one place a verified blob becomes visible."""

from __future__ import annotations

from collections.abc import AsyncIterator
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

    async def link_existing(self, repo: RepoRef, digest: Digest) -> BlobInfo | None:
        """Link a blob stored for any repository into ``repo``; None when it must be fetched."""
        async with self.db.transaction() as session:
            queries = BlobQueries(session)
            blob = await queries.get(str(digest))
            if blob is None:
                return None
            if await self.storage.stat(paths.blob_key(digest)) != blob.size:
                return None
            await queries.link(repo.id, blob.id)
            return BlobInfo(digest, blob.size)

    async def commit(self, repo: RepoRef, digest: Digest, size: int, sources: list[str]) -> None:
        """Make verified bytes (in ``sources``, in order) the blob ``digest`` of ``repo``.

        The blob row is created and locked first, then the bytes are moved into place, then the
        repository link is written, all in one transaction: garbage collection, which takes the
        same lock, can never delete bytes that a commit is making visible.
        """
        key = paths.blob_key(digest)
        async with self.db.transaction() as session:
            queries = BlobQueries(session)
            blob = await queries.lock_or_create(str(digest), size)
            if await self.storage.stat(key) == size:
                for source in sources:
                    await self.storage.delete(source)
            elif sources:
                await self.storage.compose(sources, key)
            else:  # an empty blob whose upload never received a chunk
                await self.storage.write(key, _no_chunks())
            await queries.link(repo.id, blob.id)


async def _no_chunks() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator
