"""``moorage worker`` with an experimental patch applied, to measure a proposed change to the
mirror engine before anyone edits Moorage itself (``mirror_bench --worker-experiment NAME``).

    python -m bench.mirror_worker_experiment NAME --config FILE

* ``sqlite-lock``: SQLite write transactions serialised by an asyncio.Lock in the worker
  (bench/experiment_apps.py): concurrent writers no longer meet in SQLite's busy handler,
  which polls with sleeps of 1..100 ms.
* ``switch-1ms``: ``sys.setswitchinterval(0.001)`` (default 5 ms): a thread that finished a
  database call or a write hands its result to the event loop sooner (GIL hand-over).
* ``lock+switch``: both of the above.
* ``lock+txn-stats``: both; the write transactions are timed inside the lock, so their total
  is the time the database's write lock was held.
* ``group-commit``: the copier commits downloaded blobs in groups: one write transaction
  for all the blobs that finished while the previous group was being committed (the same
  statements as BlobService.commit, per blob). A prototype of the recommended change.
* ``group-commit+lock``: both ``group-commit`` and ``sqlite-lock``.
* ``commit-in-slot``: the copier as before the change measured in docs/performance-mirror.md:
  a blob's database commit runs while it still holds its download slot (connection), so
  downloads wait for SQLite's write lock too. Run it against plain ``moorage-worker`` for an
  interleaved before/after comparison.
* ``txn-stats``: no change, but every transaction is timed; after each sync the worker logs
  how many read and write transactions it ran and how long they were open in all (a write
  transaction on SQLite holds the database's write lock from BEGIN IMMEDIATE to COMMIT).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from bench.experiment_apps import _patch_sqlite_write_lock


def _patch_txn_stats() -> None:
    import logging
    import time
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    from sqlalchemy.ext.asyncio import AsyncSession

    from moorage.db.engine import Database
    from moorage.mirror.worker import MirrorWorker

    stats = {"read": [0, 0.0, 0.0], "write": [0, 0.0, 0.0]}  # count, open s, max open s
    original = Database.transaction

    @asynccontextmanager
    async def transaction(self: Database, *, readonly: bool = False) -> AsyncIterator[AsyncSession]:
        started = time.perf_counter()
        try:
            async with original(self, readonly=readonly) as session:
                yield session
        finally:
            entry = stats["read" if readonly else "write"]
            took = time.perf_counter() - started
            entry[0] += 1
            entry[1] += took
            entry[2] = max(entry[2], took)

    Database.transaction = transaction  # type: ignore[method-assign]
    record = MirrorWorker._record

    async def logged(self: MirrorWorker, *args: object) -> None:
        await record(self, *args)  # type: ignore[arg-type]
        logging.getLogger("bench").info(
            "txn-stats %s",
            " ".join(f"{k}={v[0]} open={v[1]:.2f}s max={v[2] * 1000:.0f}ms"
                     for k, v in stats.items()),
        )  # fmt: skip
        for value in stats.values():
            value[:] = [0, 0.0, 0.0]

    MirrorWorker._record = logged  # type: ignore[method-assign,assignment]


def _patch_commit_in_slot() -> None:
    import asyncio
    import uuid

    from moorage.mirror.copier import Copier
    from moorage.oci.manifest import Descriptor
    from moorage.storage import paths

    async def fetch(self: Copier, descriptor: Descriptor) -> None:
        linked, known = await self._blob_state(str(descriptor.digest))
        if linked:
            return
        blobs = self.registry.blobs
        if known and await blobs.link_existing(self.repo, descriptor.digest) is not None:
            self.stats.blobs_linked += 1
            return
        staging = paths.staging_key(str(uuid.uuid4()))
        try:
            async with self.blob_slots:
                size = await self._download(descriptor, staging)
                await blobs.commit(self.repo, descriptor.digest, size, [staging])
        except BaseException:
            await asyncio.shield(blobs.storage.delete_prefix(staging.rsplit("/", 1)[0]))
            raise
        self.stats.bytes_copied += size
        self.stats.blobs_fetched += 1

    Copier._fetch_blob = fetch  # type: ignore[method-assign]


def _patch_lock_and_txn_stats() -> None:
    _patch_txn_stats()  # inner: timed inside the lock
    _patch_sqlite_write_lock()


def _patch_group_commit() -> None:
    import asyncio
    import uuid
    from typing import Any

    from moorage.db.queries.blobs import BlobQueries  # noqa: TID251 - prototype of mirror code
    from moorage.mirror.copier import Copier
    from moorage.oci.manifest import Descriptor
    from moorage.storage import paths

    pending: dict[int, list[tuple[Descriptor, str, int, asyncio.Future[None]]]] = {}
    running: dict[int, asyncio.Task[None]] = {}

    async def commit_group(copier: Copier, group: list[Any]) -> None:
        blobs = copier.registry.blobs
        async with blobs.db.transaction() as session:
            queries = BlobQueries(session)
            for descriptor, staging, size, _ in group:
                blob = await queries.lock_or_create(str(descriptor.digest), size)
                key = paths.blob_key(descriptor.digest)
                if await blobs.storage.stat(key) == size:
                    await blobs.storage.delete(staging)
                else:
                    await blobs.storage.compose([staging], key)
                await queries.link(copier.repo.id, blob.id)

    async def committer(copier: Copier) -> None:
        queue = pending[id(copier)]
        while queue:
            group = list(queue)
            queue.clear()
            try:
                await commit_group(copier, group)
            except BaseException as exc:
                for *_, future in group:
                    if not future.done():
                        future.set_exception(exc)
                raise
            for *_, future in group:
                if not future.done():
                    future.set_result(None)

    async def commit(copier: Copier, descriptor: Descriptor, staging: str, size: int) -> None:
        future = asyncio.get_running_loop().create_future()
        pending.setdefault(id(copier), []).append((descriptor, staging, size, future))
        task = running.get(id(copier))
        if task is None or task.done():
            running[id(copier)] = asyncio.create_task(committer(copier))
        await future

    async def fetch(self: Copier, descriptor: Descriptor) -> None:
        linked, known = await self._blob_state(str(descriptor.digest))
        if linked:
            return
        blobs = self.registry.blobs
        if known and await blobs.link_existing(self.repo, descriptor.digest) is not None:
            self.stats.blobs_linked += 1
            return
        staging = paths.staging_key(str(uuid.uuid4()))
        try:
            async with self.blob_slots:
                size = await self._download(descriptor, staging)
            await commit(self, descriptor, staging, size)
        except BaseException:
            await asyncio.shield(blobs.storage.delete_prefix(staging.rsplit("/", 1)[0]))
            raise
        self.stats.bytes_copied += size
        self.stats.blobs_fetched += 1

    Copier._fetch_blob = fetch  # type: ignore[method-assign]


def _patch_group_commit_and_lock() -> None:
    _patch_group_commit()
    _patch_sqlite_write_lock()


def _patch_switch_interval() -> None:
    sys.setswitchinterval(0.001)


def _patch_lock_and_switch() -> None:
    _patch_sqlite_write_lock()
    _patch_switch_interval()


PATCHES: dict[str, Callable[[], None]] = {
    "sqlite-lock": _patch_sqlite_write_lock,
    "switch-1ms": _patch_switch_interval,
    "lock+switch": _patch_lock_and_switch,
    "txn-stats": _patch_txn_stats,
    "commit-in-slot": _patch_commit_in_slot,
    "lock+txn-stats": _patch_lock_and_txn_stats,
    "group-commit": _patch_group_commit,
    "group-commit+lock": _patch_group_commit_and_lock,
}


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in PATCHES:
        raise SystemExit(f"usage: NAME --config FILE; NAME one of {sorted(PATCHES)}")
    PATCHES[argv[0]]()
    from moorage.__main__ import main as moorage_main

    moorage_main(["worker", *argv[1:]])


if __name__ == "__main__":
    main(sys.argv[1:])
