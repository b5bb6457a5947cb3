"""Group commit of verified blobs: those that finish while one commit runs share the next.

A sync downloads several blobs at once and each must become visible in one database
transaction. On SQLite every write transaction takes the database's one write lock, and on
both databases each costs a round trip per statement; committing the blobs that queued up
meanwhile together keeps the number of transactions near the number of commits the database
can actually run in that time, instead of one per blob.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from moorage.services.blobs import BlobService, VerifiedBlob
from moorage.services.repositories import RepoRef

Discard = Callable[[VerifiedBlob], Awaitable[None]]


class CommitQueue:
    """Commit verified blobs into ``repo`` in groups, one group at a time.

    Once handed to ``commit``, a blob belongs to the queue: if its group fails, ``discard``
    removes its staged bytes. A caller cancelled while waiting does not stop the commit.
    """

    def __init__(self, blobs: BlobService, repo: RepoRef, discard: Discard) -> None:
        self.blobs = blobs
        self.repo = repo
        self.discard = discard
        self._pending: list[tuple[VerifiedBlob, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    async def commit(self, blob: VerifiedBlob) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((blob, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        await asyncio.shield(future)

    async def close(self) -> None:
        """Wait for the commits already handed over (they are short); call before leaving."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        while self._pending:
            group, self._pending = self._pending, []
            try:
                await self.blobs.commit_many(self.repo, [blob for blob, _ in group])
            except BaseException as exc:
                await asyncio.shield(
                    asyncio.gather(
                        *(self.discard(blob) for blob, _ in group), return_exceptions=True
                    )
                )
                for _, future in group:
                    if not isinstance(exc, Exception):
                        future.cancel()
                        continue
                    future.set_exception(exc)
                    future.exception()  # retrieved: a cancelled waiter cannot see it
                if not isinstance(exc, Exception):
                    for _, future in self._pending:
                        future.cancel()
                    self._pending = []
                    raise
                continue
            for _, future in group:
                future.set_result(None)
