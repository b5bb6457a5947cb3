"""Garbage collection: unreachable manifests, then unreferenced blobs, then stale uploads.

Safe while serving: nothing younger than the grace period is touched, manifests are deleted
only if still untagged inside the deleting transaction, and a blob's bytes are deleted under the
same row lock that an upload or mirror commit takes (see BlobService.commit).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from moorage.db.base import utcnow
from moorage.db.engine import Database
from moorage.db.queries.blobs import BlobQueries
from moorage.db.queries.gc import GcQueries
from moorage.oci.digest import Digest
from moorage.services.uploads import UploadService
from moorage.storage import paths
from moorage.storage.base import StorageDriver

log = logging.getLogger(__name__)


@dataclass
class GcReport:
    manifests_deleted: int = 0
    blobs_deleted: int = 0
    bytes_freed: int = 0
    uploads_purged: int = 0


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
        report = GcReport()
        cutoff = utcnow() - self.grace
        async with self.db.transaction(readonly=True) as session:
            repo_ids = await GcQueries(session).repository_ids()
        for repo_id in repo_ids:
            report.manifests_deleted += await self._collect_manifests(repo_id, cutoff)
        await self._collect_blobs(cutoff, report)
        report.uploads_purged = await self.uploads.purge_stale(upload_max_age)
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
            async with self.db.transaction() as session:
                queries = BlobQueries(session)
                batch = await queries.collectable(cutoff, 200)
                for blob in batch:
                    await self.storage.delete(paths.blob_key(Digest.parse(blob.digest)))
                    await queries.delete(blob.id)
                    report.blobs_deleted += 1
                    report.bytes_freed += blob.size
            if len(batch) < 200:
                return
