"""Latency metrics for storage driver and database calls, without touching their code.

``InstrumentedStorage`` wraps any StorageDriver (it is one itself) and times each call;
``instrument_database`` hooks SQLAlchemy's cursor events and returns a function that unhooks
them (an injected Database may outlive the app that instrumented it).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine

from moorage.db.engine import Database
from moorage.errors import StorageNotFound
from moorage.observability.metrics import IoMetrics
from moorage.storage.base import ChunkObserver, ObjectInfo, PendingWrite, StorageDriver

T = TypeVar("T")
_STATEMENTS = frozenset({"select", "insert", "update", "delete"})


class InstrumentedStorage:
    """A StorageDriver that times every call of the driver it wraps."""

    def __init__(self, inner: StorageDriver, metrics: IoMetrics) -> None:
        self.inner = inner
        self.name = inner.name
        self.metrics = metrics

    def __getattr__(self, name: str) -> Any:
        # Driver-specific attributes (S3 ``client``/``bucket``, filesystem ``root``) stay
        # reachable for tools and tests that inspect the concrete driver.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    async def _timed(self, operation: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await call
        except StorageNotFound:
            raise
        except Exception:
            self.metrics.storage_errors.labels(operation).inc()
            raise
        finally:
            self.metrics.storage.labels(operation).observe(time.perf_counter() - started)

    async def stat(self, key: str) -> int | None:
        return await self._timed("stat", self.inner.stat(key))

    async def read(
        self, key: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        pieces = self.inner.read(key, offset, length)
        try:
            first = await self._timed("read", _first(pieces))
            if first is None:
                return
            yield first
            async for piece in pieces:
                yield piece
        finally:
            close: Callable[[], Awaitable[None]] | None = getattr(pieces, "aclose", None)
            if close is not None:
                await close()

    async def write(
        self, key: str, chunks: AsyncIterable[bytes], observer: ChunkObserver | None = None
    ) -> int:
        return await self._timed("write", self.inner.write(key, chunks, observer))

    async def compose(self, sources: list[str], dest: str) -> None:
        await self._timed("compose", self.inner.compose(sources, dest))

    async def delete(self, key: str) -> None:
        await self._timed("delete", self.inner.delete(key))

    async def delete_prefix(self, prefix: str) -> None:
        await self._timed("delete_prefix", self.inner.delete_prefix(prefix))

    def list(self, prefix: str) -> AsyncIterator[str]:
        return self.inner.list(prefix)

    def scan(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        return self.inner.scan(prefix)

    def pending_writes(self) -> AsyncIterator[PendingWrite]:
        return self.inner.pending_writes()

    async def discard_pending(self, write: PendingWrite) -> None:
        await self._timed("discard_pending", self.inner.discard_pending(write))

    async def redirect_url(self, key: str, expires_in: int) -> str | None:
        return await self._timed("redirect_url", self.inner.redirect_url(key, expires_in))

    async def close(self) -> None:
        await self.inner.close()


async def _first(pieces: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await pieces.__anext__()
    except StopAsyncIteration:
        return None


def _statement_kind(statement: str) -> str:
    word = statement.lstrip(" (\n\t").split(None, 1)[0].lower() if statement.strip() else ""
    return word if word in _STATEMENTS else "other"


def instrument_database(db: Database, metrics: IoMetrics) -> Callable[[], None]:
    """Time every statement ``db`` executes; call the result to stop."""
    engines: list[Engine] = [db.write_engine.sync_engine]
    if db.read_engine is not db.write_engine:
        engines.append(db.read_engine.sync_engine)

    def before(conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        conn.info.setdefault("moorage_started", []).append(time.perf_counter())

    def after(conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        started = conn.info.get("moorage_started")
        if started:
            seconds = time.perf_counter() - started.pop()
            metrics.db.labels(_statement_kind(statement)).observe(seconds)

    def failed(context: Any) -> None:
        started = context.connection.info.get("moorage_started") if context.connection else None
        if started:
            started.pop()

    for engine in engines:
        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)
        event.listen(engine, "handle_error", failed)

    def remove() -> None:
        for engine in engines:
            for name, function in (
                ("before_cursor_execute", before),
                ("after_cursor_execute", after),
                ("handle_error", failed),
            ):
                if event.contains(engine, name, function):
                    event.remove(engine, name, function)

    return remove
