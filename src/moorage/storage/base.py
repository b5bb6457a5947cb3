"""The storage driver contract. Every driver passes tests/storage/test_contract.py.

Keys are relative, slash-separated paths built by ``moorage.storage.paths`` only.
Writes are atomic: a key shows either its old content or its complete new content.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

# Called with each piece of data, in order, from a worker thread, while it is written.
# Used to hash content while it streams without blocking the event loop.
ChunkObserver = Callable[[bytes], None]

READ_PIECE = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One stored object as a listing sees it (``StorageDriver.scan``)."""

    key: str
    size: int
    modified: dt.datetime  # timezone-aware UTC: when the object was last written


@dataclass(frozen=True, slots=True)
class PendingWrite:
    """A write a driver began and never finished: a filesystem temporary file, or an S3
    multipart upload never completed nor aborted (the writer was killed). Only the driver that
    listed it can discard it."""

    key: str  # the key being written (S3), or the temporary file (filesystem: ``_tmp/<name>``)
    last_activity: dt.datetime  # timezone-aware UTC
    size: int  # bytes received so far (as far as the driver can tell)
    handle: str  # driver-specific (the S3 multipart upload id)


class StorageDriver(Protocol):
    """Byte-level storage. Implementations: FilesystemDriver, S3Driver."""

    name: str

    async def stat(self, key: str) -> int | None:
        """Size of the object at ``key``, or None when absent."""
        ...

    def read(self, key: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Stream ``length`` bytes (all when None) from ``offset``. Raises StorageNotFound."""
        ...

    async def write(
        self, key: str, chunks: AsyncIterable[bytes], observer: ChunkObserver | None = None
    ) -> int:
        """Atomically create or replace ``key`` with the streamed data; return its size."""
        ...

    async def compose(self, sources: list[str], dest: str) -> None:
        """Atomically make ``dest`` the concatenation of ``sources``; sources may be consumed."""
        ...

    async def delete(self, key: str) -> None:
        """Delete ``key``; absent keys are not an error."""
        ...

    async def delete_prefix(self, prefix: str) -> None:
        """Delete every key under ``prefix/``."""
        ...

    def list(self, prefix: str) -> AsyncIterator[str]:
        """Every key under ``prefix/``, in no particular order."""
        ...

    def scan(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        """Every object under ``prefix/`` with its size and modification time, in no particular
        order, streamed (memory does not grow with the number of objects)."""
        ...

    def pending_writes(self) -> AsyncIterator[PendingWrite]:
        """Writes begun and not finished, in flight or abandoned by a killed process."""
        ...

    async def discard_pending(self, write: PendingWrite) -> None:
        """Throw away an abandoned write listed by ``pending_writes``; gone already is fine."""
        ...

    async def redirect_url(self, key: str, expires_in: int) -> str | None:
        """A URL a client may fetch ``key`` from directly, or None if unsupported."""
        ...

    async def close(self) -> None: ...
