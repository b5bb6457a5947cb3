"""Health checks of one process: is the database reachable, is storage writable.

- ``instance``: the process answers, ``SELECT 1`` succeeds, and a tiny object can be written
  to and deleted from storage (one key per process, overwritten by each check).
- ``endtoend``: a write transaction that reads through the schema, and a storage round trip
  with a fresh key: write random bytes, read them back, compare, delete.

Every probe is bounded by ``timeout`` seconds; a failure is logged with its cause and reported
as ``false`` (the HTTP answer carries no error detail).
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from moorage.db.engine import Database
from moorage.db.queries.health import HealthQueries
from moorage.errors import StorageError
from moorage.storage import paths
from moorage.storage.base import StorageDriver

log = logging.getLogger(__name__)
CHECK_TIMEOUT = 5.0
PROBE_SIZE = 64

Probe = Callable[[], Awaitable[None]]


class HealthService:
    def __init__(
        self, db: Database, storage: StorageDriver, timeout: float = CHECK_TIMEOUT
    ) -> None:
        self.db = db
        self.storage = storage
        self.timeout = timeout
        self.instance_key = paths.health_key(f"instance-{uuid.uuid4().hex}")

    async def instance(self) -> dict[str, bool]:
        database, storage = await asyncio.gather(
            self._check("database", self._db_ping), self._check("storage", self._storage_writable)
        )
        return {"process": True, "database": database, "storage": storage}

    async def endtoend(self) -> dict[str, bool]:
        database, storage = await asyncio.gather(
            self._check("database", self._db_round_trip),
            self._check("storage", self._storage_round_trip),
        )
        return {"process": True, "database": database, "storage": storage}

    async def _check(self, name: str, probe: Probe) -> bool:
        try:
            await asyncio.wait_for(probe(), self.timeout)
        except TimeoutError:
            log.warning("health check: %s did not answer within %ss", name, self.timeout)
            return False
        except Exception as exc:
            log.warning("health check: %s failed: %s: %s", name, type(exc).__name__, exc)
            return False
        return True

    async def _db_ping(self) -> None:
        async with self.db.transaction(readonly=True) as session:
            await HealthQueries(session).ping()

    async def _db_round_trip(self) -> None:
        # A write transaction (BEGIN IMMEDIATE on SQLite) proves the database accepts writers.
        async with self.db.transaction() as session:
            await HealthQueries(session).read_schema()

    async def _storage_writable(self) -> None:
        await self.storage.write(self.instance_key, _chunks(b"ok"))
        await self.storage.delete(self.instance_key)

    async def _storage_round_trip(self) -> None:
        key = paths.health_key(uuid.uuid4().hex)
        payload = os.urandom(PROBE_SIZE)
        try:
            await self.storage.write(key, _chunks(payload))
            data = b"".join([piece async for piece in self.storage.read(key)])
            if data != payload:
                raise StorageError(f"storage returned {len(data)} bytes that differ from the probe")
        finally:
            await self.storage.delete(key)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data
