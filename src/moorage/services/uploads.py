"""Blob upload sessions: start, append chunks, report status, complete with verification."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from moorage.db.base import utcnow
from moorage.db.engine import Database
from moorage.db.models import Upload
from moorage.db.queries.uploads import UploadQueries
from moorage.errors import (
    BlobUploadUnknown,
    DigestInvalid,
    NameUnknown,
    PayloadTooLarge,
    RangeNotSatisfiable,
)
from moorage.oci.digest import Digest
from moorage.services.blobs import BlobService
from moorage.services.hashcache import UploadHashCache
from moorage.services.repositories import RepoRef
from moorage.storage import paths
from moorage.storage.base import StorageDriver


@dataclass(frozen=True, slots=True)
class UploadStatus:
    id: str
    size: int


async def limit_size(
    chunks: AsyncIterable[bytes], limit: int, maximum: int | None = None
) -> AsyncIterator[bytes]:
    """Pass chunks through, failing as soon as more than ``limit`` bytes arrive.

    ``maximum`` is the blob size limit the error names (``limit`` is what is left of it).
    """
    seen = 0
    async for chunk in chunks:
        seen += len(chunk)
        if seen > limit:
            raise PayloadTooLarge(
                f"blob exceeds the maximum size of {limit if maximum is None else maximum} bytes"
            )
        yield chunk


class UploadService:
    def __init__(
        self,
        db: Database,
        storage: StorageDriver,
        blobs: BlobService,
        hash_cache: UploadHashCache,
        max_blob_size: int,
    ) -> None:
        self.db = db
        self.storage = storage
        self.blobs = blobs
        self.hash_cache = hash_cache
        self.max_blob_size = max_blob_size

    async def start(self, repo: RepoRef) -> UploadStatus:
        upload_id = str(uuid.uuid4())
        try:
            async with self.db.transaction() as session:
                await UploadQueries(session).create(upload_id, repo.id)
        except IntegrityError as exc:  # the repository was deleted a moment ago (cached id)
            raise NameUnknown(f"repository {repo.full_name} not found") from exc
        return UploadStatus(upload_id, 0)

    async def _get(self, repo: RepoRef, upload_id: str) -> Upload:
        if not paths.is_upload_id(upload_id):
            raise BlobUploadUnknown(f"upload {upload_id!r} not found")
        async with self.db.transaction(readonly=True) as session:
            upload = await UploadQueries(session).get(repo.id, upload_id)
        if upload is None:
            raise BlobUploadUnknown(f"upload {upload_id} not found")
        return upload

    async def status(self, repo: RepoRef, upload_id: str) -> UploadStatus:
        upload = await self._get(repo, upload_id)
        return UploadStatus(upload.id, upload.size)

    async def append(
        self,
        repo: RepoRef,
        upload_id: str,
        chunks: AsyncIterable[bytes],
        start: int | None = None,
    ) -> UploadStatus:
        """Store one more chunk. ``start`` (from Content-Range) must equal the current size."""
        upload = await self._get(repo, upload_id)
        return await self._append(upload, chunks, start)

    async def _append(
        self, upload: Upload, chunks: AsyncIterable[bytes], start: int | None
    ) -> UploadStatus:
        if start is not None and start != upload.size:
            raise RangeNotSatisfiable(
                f"chunk starts at {start} but {upload.size} bytes were received", detail=upload.size
            )
        hasher = self.hash_cache.take(upload.id, upload.size)
        key = paths.upload_chunk_key(upload.id, upload.chunk_count, uuid.uuid4().hex[:12])
        limited = limit_size(chunks, self.max_blob_size - upload.size, self.max_blob_size)
        added = await self.storage.write(key, limited, hasher.update if hasher else None)
        async with self.db.transaction() as session:
            advanced = await UploadQueries(session).advance(upload, key, added)
        if not advanced:
            await self.storage.delete(key)
            raise RangeNotSatisfiable("another request appended to this upload concurrently")
        size = upload.size + added
        if hasher is not None:
            self.hash_cache.put(upload.id, size, hasher)
        upload.size, upload.chunk_count = size, upload.chunk_count + 1
        upload.chunk_keys = [*upload.chunk_keys, key]
        return UploadStatus(upload.id, size)

    async def complete(
        self,
        repo: RepoRef,
        upload_id: str,
        digest: Digest,
        chunks: AsyncIterable[bytes] | None = None,
        start: int | None = None,
    ) -> int:
        """Finish the upload: verify the digest, then make the blob visible. Returns its size.

        ``chunks`` is an optional last chunk; ``start`` (from its Content-Range) must then equal
        the size received so far.
        """
        upload = await self._get(repo, upload_id)
        if chunks is not None:
            await self._append(upload, chunks, start)
        actual = await self._digest_of(upload, digest.algorithm)
        if actual != digest.hex:
            await self._discard(upload.id)
            raise DigestInvalid(f"content digest is {digest.algorithm}:{actual}, not {digest}")
        await self.blobs.commit(repo, digest, upload.size, list(upload.chunk_keys))
        await self._discard(upload.id)
        return upload.size

    async def monolithic(self, repo: RepoRef, digest: Digest, chunks: AsyncIterable[bytes]) -> int:
        """Start, receive and complete in one request; a refused body leaves no session behind."""
        status = await self.start(repo)
        try:
            return await self.complete(repo, status.id, digest, chunks)
        except Exception:  # too large, a digest mismatch, the client went away ...
            with contextlib.suppress(Exception):
                await self._discard(status.id)
            raise

    async def cancel(self, repo: RepoRef, upload_id: str) -> None:
        await self._get(repo, upload_id)
        await self._discard(upload_id)

    async def _discard(self, upload_id: str) -> None:
        self.hash_cache.forget(upload_id)
        async with self.db.transaction() as session:
            await UploadQueries(session).delete(upload_id)
        await self.storage.delete_prefix(paths.upload_prefix(upload_id))

    async def _digest_of(self, upload: Upload, algorithm: str) -> str:
        if algorithm == "sha256":
            cached = self.hash_cache.peek(upload.id, upload.size)
            if cached is not None:
                return cached.hexdigest()
        # Another node received earlier chunks (or the process restarted): rehash from storage.
        hasher = Digest(algorithm, "").hasher()
        for key in upload.chunk_keys:
            async for piece in self.storage.read(key):
                await asyncio.to_thread(hasher.update, piece)
        return hasher.hexdigest()

    async def purge_stale(self, older_than_seconds: int, limit: int = 1000) -> int:
        """Delete upload sessions untouched for ``older_than_seconds``; return how many."""
        before = utcnow() - dt.timedelta(seconds=older_than_seconds)
        async with self.db.transaction(readonly=True) as session:
            stale = await UploadQueries(session).stale(before, limit)
        for upload_id in stale:
            await self._discard(upload_id)
        return len(stale)
