"""``moorage worker`` with an experimental patch applied, to measure a proposed change to the
mirror engine before anyone edits Moorage itself (``mirror_bench --worker-experiment NAME``).

    python -m bench.mirror_worker_experiment NAME --config FILE

* ``sqlite-lock``: SQLite write transactions serialised by an asyncio.Lock in the worker
  (bench/experiment_apps.py): concurrent writers no longer meet in SQLite's busy handler,
  which polls with sleeps of 1..100 ms.
* ``switch-1ms``: ``sys.setswitchinterval(0.001)`` (default 5 ms): a thread that finished a
  database call or a write hands its result to the event loop sooner (GIL hand-over).
* ``lock+switch``: both of the above.
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
}


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in PATCHES:
        raise SystemExit(f"usage: NAME --config FILE; NAME one of {sorted(PATCHES)}")
    PATCHES[argv[0]]()
    from moorage.__main__ import main as moorage_main

    moorage_main(["worker", *argv[1:]])


if __name__ == "__main__":
    main(sys.argv[1:])
