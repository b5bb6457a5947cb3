"""``moorage worker`` with an experimental patch applied, to measure a proposed change to the
mirror engine before anyone edits Moorage itself (``mirror_bench --worker-experiment NAME``).

    python -m bench.mirror_worker_experiment NAME --config FILE

* ``txn-stats``: no change, but every transaction is timed; after each sync the worker logs
  how many read and write transactions it ran and how long they were open in all (a write
  transaction on SQLite holds the database's write lock from BEGIN IMMEDIATE to COMMIT).
* ``trace``: no change, but every copy step (tag, manifest, blob state, download, commit,
  transaction wait and body) appends ``[name, start, end]`` to $MIRROR_TRACE (JSON lines),
  to see where a sync's time goes and how many downloads are in flight.
* ``switch-1ms``: ``sys.setswitchinterval(0.001)`` (default 5 ms): a thread that finished a
  database call or a write hands its result to the event loop sooner (GIL hand-over).
* ``bytes-only``: NOT a valid sync, a lower bound: blobs are downloaded, verified and written
  to staging, then deleted; nothing is committed (no blob, manifest or audit writes). What
  the cold sync would cost if the database took no time.

Earlier experiments that became Moorage changes (SQLite writers queued on an asyncio lock,
group commit of blobs, 1 MiB body reads) were removed with the change; docs/performance.md
has their numbers.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


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


def _patch_trace() -> None:
    """Append (name, start, end) of every copy step to $MIRROR_TRACE (JSON lines)."""
    import functools
    import json
    import os
    import time
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager
    from typing import Any

    from sqlalchemy.ext.asyncio import AsyncSession

    from moorage.db.engine import Database
    from moorage.mirror.copier import Copier
    from moorage.mirror.sync import MirrorSync
    from moorage.mirror.upstream import UpstreamClient
    from moorage.services.blobs import BlobService
    from moorage.services.manifests import ManifestService

    out = open(os.environ.get("MIRROR_TRACE", "/tmp/mirror-trace.jsonl"), "a")  # noqa: SIM115

    def emit(name: str, start: float) -> None:
        out.write(json.dumps([name, start, time.perf_counter()]) + "\n")
        out.flush()

    def traced(cls: Any, attr: str) -> None:
        original = getattr(cls, attr)

        @functools.wraps(original)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                emit(f"{cls.__name__}.{attr}", start)

        setattr(cls, attr, wrapper)

    for cls, attr in [
        (Copier, "copy_tag"),
        (Copier, "complete"),
        (Copier, "_copy_manifest"),
        (Copier, "_fetch_blob"),
        (Copier, "_download"),
        (Copier, "_not_present"),
        (UpstreamClient, "get_manifest"),
        (UpstreamClient, "head_manifest"),
        (UpstreamClient, "list_tags"),
        (BlobService, "commit_many"),
        (BlobService, "link_existing"),
        (ManifestService, "put"),
        (ManifestService, "get"),
        (MirrorSync, "audit"),
        (MirrorSync, "_copy_tag"),
    ]:
        traced(cls, attr)
    original = Database.transaction

    @asynccontextmanager
    async def transaction(self: Database, *, readonly: bool = False) -> AsyncIterator[AsyncSession]:
        start = time.perf_counter()
        async with original(self, readonly=readonly) as session:
            emit("txn-wait-" + ("read" if readonly else "write"), start)
            begun = time.perf_counter()
            try:
                yield session
            finally:
                emit("txn-body-" + ("read" if readonly else "write"), begun)

    Database.transaction = transaction  # type: ignore[method-assign]


def _patch_switch_interval() -> None:
    sys.setswitchinterval(0.001)


def _patch_bytes_only() -> None:
    import asyncio
    import uuid
    from typing import Any

    from moorage.mirror.copier import Copier
    from moorage.mirror.sync import MirrorSync
    from moorage.oci.manifest import Descriptor
    from moorage.services.manifests import ManifestService
    from moorage.storage import paths

    async def fetch(self: Copier, descriptor: Descriptor) -> None:
        staging = paths.staging_key(str(uuid.uuid4()))
        try:
            async with self.blob_slots:
                await self._download(descriptor, staging)
        finally:
            await asyncio.shield(
                self.registry.blobs.storage.delete_prefix(staging.rsplit("/", 1)[0])
            )
        self.stats.blobs_fetched += 1

    async def no_put(self: ManifestService, *args: Any, **kwargs: Any) -> None:
        return None

    async def no_audit(self: MirrorSync, kind: str, **meta: Any) -> None:
        return None

    Copier._fetch_blob = fetch  # type: ignore[method-assign]
    ManifestService.put = no_put  # type: ignore[method-assign,assignment]
    MirrorSync.audit = no_audit  # type: ignore[method-assign]


PATCHES: dict[str, Callable[[], None]] = {
    "txn-stats": _patch_txn_stats,
    "trace": _patch_trace,
    "switch-1ms": _patch_switch_interval,
    "bytes-only": _patch_bytes_only,
}


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in PATCHES:
        raise SystemExit(f"usage: NAME --config FILE; NAME one of {sorted(PATCHES)}")
    PATCHES[argv[0]]()
    from moorage.__main__ import main as moorage_main

    moorage_main(["worker", *argv[1:]])


if __name__ == "__main__":
    main(sys.argv[1:])
