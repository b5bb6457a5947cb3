"""Garbage collection: unreachable manifests, unreferenced blobs, orphan blob bytes, stale
uploads and staging garbage.

Safe while serving: nothing younger than the grace period is touched, manifests are deleted
only if still untagged inside the deleting transaction, and blob bytes are deleted only while
their digest is held (see ``delete_unowned_bytes``), which a commit of the same digest waits for.

Blob rows are deleted (and committed) before their bytes: a crash or a failed commit in
between leaves orphan bytes, which are harmless (nothing points at them) and which the next run
collects, never a blob row whose bytes are gone.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from moorage.db.base import utcnow
from moorage.db.engine import Database
from moorage.db.queries.blobs import BlobQueries
from moorage.db.queries.gc import GcQueries
from moorage.oci.digest import Digest
from moorage.services.staging import (
    ORPHAN_STAGING,
    PENDING_WRITE,
    STALE_UPLOAD,
    find_staging_garbage,
    remove_staging_item,
)
from moorage.services.uploads import UploadService
from moorage.storage import paths
from moorage.storage.base import StorageDriver

log = logging.getLogger(__name__)


BLOB_BATCH = 200


@dataclass
class GcReport:
    manifests_deleted: int = 0
    blobs_deleted: int = 0
    bytes_freed: int = 0
    uploads_purged: int = 0
    orphan_blobs_deleted: int = 0  # blob bytes without a blob row (an interrupted earlier run)
    staging_deleted: int = 0  # uploads/<id>/ prefixes without a session
    pending_writes_discarded: int = 0  # _tmp/ files, S3 multipart uploads

    def summary(self) -> str:
        return (
            f"deleted {self.manifests_deleted} manifests, {self.blobs_deleted} blobs "
            f"({self.bytes_freed} bytes), {self.orphan_blobs_deleted} orphan blob objects; "
            f"purged {self.uploads_purged} uploads, {self.staging_deleted} staging prefixes, "
            f"{self.pending_writes_discarded} unfinished writes"
        )


async def delete_unowned_bytes(
    db: Database, storage: StorageDriver, digests: Sequence[Digest]
) -> list[Digest]:
    """Delete the stored bytes of those ``digests`` that have no blob row; return them.

    Each digest is claimed with a placeholder row (``BlobQueries.claim_absent``) for the time
    its bytes are deleted: a concurrent upload or mirror commit of the same digest waits for the
    claim, then finds no bytes and writes its own; a digest whose row exists (or reappeared since
    the caller looked) is left alone. The placeholders never commit.
    """
    deleted: list[Digest] = []
    if not digests:
        return deleted
    async with db.transaction() as session:
        queries = BlobQueries(session)
        # In digest order, as commits lock theirs: two transactions never wait on each other.
        for digest in sorted(set(digests), key=str):
            if await queries.claim_absent(str(digest)):
                await storage.delete(paths.blob_key(digest))
                deleted.append(digest)
        await queries.release(str(d) for d in deleted)
    return deleted


def reachable(
    manifests: list[tuple[int, str, str | None, dt.datetime]],
    tagged: set[int],
    edges: list[tuple[int, int]],
) -> set[int]:
    """Manifests reachable from tags through index children and referrer subjects (pure)."""
    children: dict[int, list[int]] = {}
    for parent, child in edges:
        children.setdefault(parent, []).append(child)
    by_subject: dict[str, list[int]] = {}
    digest_of = {m[0]: m[1] for m in manifests}
    for manifest_id, _digest, subject, _created in manifests:
        if subject:
            by_subject.setdefault(subject, []).append(manifest_id)
    seen: set[int] = set()
    stack = [m for m in tagged if m in digest_of]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        stack.extend(children.get(current, ()))
        stack.extend(by_subject.get(digest_of[current], ()))
    return seen


class GarbageCollector:
    def __init__(
        self, db: Database, storage: StorageDriver, uploads: UploadService, grace_seconds: int
    ) -> None:
        self.db = db
        self.storage = storage
        self.uploads = uploads
        self.grace = dt.timedelta(seconds=grace_seconds)

    async def run(self, upload_max_age: int) -> GcReport:
        """Collect everything; ``upload_max_age`` (seconds) is the staleness threshold of upload
        sessions and staging garbage (UPLOAD_PURGE_AFTER_SECONDS)."""
        report = GcReport()
        cutoff = utcnow() - self.grace
        async with self.db.transaction(readonly=True) as session:
            repo_ids = await GcQueries(session).repository_ids()
        for repo_id in repo_ids:
            report.manifests_deleted += await self._collect_manifests(repo_id, cutoff)
        await self._collect_blobs(cutoff, report)
        await self._collect_orphan_bytes(cutoff, report)
        report.uploads_purged = await self.uploads.purge_stale(upload_max_age)
        await self._collect_staging(utcnow() - dt.timedelta(seconds=upload_max_age), report)
        log.info("gc finished: %s", report)
        return report

    async def _collect_manifests(self, repository_id: int, cutoff: dt.datetime) -> int:
        async with self.db.transaction(readonly=True) as session:
            queries = GcQueries(session)
            manifests = list(await queries.manifests(repository_id))
            tagged = await queries.tagged_manifest_ids(repository_id)
            edges = list(await queries.child_edges(repository_id))
        keep = reachable(manifests, tagged, edges)
        # Delete parents before children: an index must go before the manifests it lists.
        parents = {p for p, _ in edges}
        doomed = [m for m in manifests if m[0] not in keep and m[3] < cutoff]
        doomed.sort(key=lambda m: m[0] not in parents)
        deleted = 0
        for manifest_id, *_ in doomed:
            async with self.db.transaction() as session:
                deleted += await GcQueries(session).delete_if_untagged(manifest_id)
        return deleted

    async def _collect_blobs(self, cutoff: dt.datetime, report: GcReport) -> None:
        while True:
            # First the rows, committed: from here on nothing can reference these blobs, and a
            # new push of one of them creates a fresh row (and waits for the claim below).
            async with self.db.transaction() as session:
                batch = await BlobQueries(session).collectable(cutoff, BLOB_BATCH)
                gc_queries = GcQueries(session)
                doomed = set(await gc_queries.still_collectable([b.id for b in batch], cutoff))
                await gc_queries.delete_blobs(sorted(doomed))
            report.blobs_deleted += len(doomed)
            sizes = {blob.digest: blob.size for blob in batch if blob.id in doomed}
            # Then the bytes, now orphans. A crash here leaves orphan bytes for the next run.
            freed = await delete_unowned_bytes(
                self.db, self.storage, [Digest.parse(d) for d in sizes]
            )
            report.bytes_freed += sum(sizes[str(d)] for d in freed)
            if len(batch) < BLOB_BATCH:
                return

    async def _collect_orphan_bytes(self, cutoff: dt.datetime, report: GcReport) -> None:
        """Blob objects without a blob row, written before ``cutoff``."""
        pending: list[tuple[Digest, int]] = []
        async for info in self.storage.scan(paths.BLOBS):
            digest = paths.blob_digest(info.key)
            if digest is None:
                log.warning("gc: %s is not a blob key; left alone", info.key)
                continue
            if info.modified < cutoff:
                pending.append((digest, info.size))
            if len(pending) >= BLOB_BATCH:
                await self._delete_orphans(pending, report)
                pending = []
        await self._delete_orphans(pending, report)

    async def _delete_orphans(self, found: list[tuple[Digest, int]], report: GcReport) -> None:
        if not found:
            return
        async with self.db.transaction(readonly=True) as session:
            owned = await BlobQueries(session).existing(str(d) for d, _ in found)
        orphans = {d: size for d, size in found if str(d) not in owned}
        for digest in await delete_unowned_bytes(self.db, self.storage, list(orphans)):
            report.orphan_blobs_deleted += 1
            report.bytes_freed += orphans[digest]

    async def _collect_staging(self, before: dt.datetime, report: GcReport) -> None:
        scan = await find_staging_garbage(self.db, self.storage, before)
        for item in scan.items:
            if not await remove_staging_item(self.db, self.storage, item, before):
                continue
            if item.kind == STALE_UPLOAD:
                report.uploads_purged += 1
            elif item.kind == ORPHAN_STAGING:
                report.staging_deleted += 1
            elif item.kind == PENDING_WRITE:
                report.pending_writes_discarded += 1
