"""Registry consistency check for tests: `moorage fsck`'s service, in the shape tests assert on.

``check_consistency`` runs ``FsckService`` (services/fsck.py: every tag → manifest → blob and
child chain in the database and in storage, blob content hashed) over every repository, or over
the repositories named, and returns:

- ``problems``: every corruption finding as a readable string (never raised, so a test can
  assert ``report.problems == []`` and see them all at once) — garbage such as orphan bytes or
  interrupted uploads is not a problem here (see ``staging_leftovers``);
- ``sparse_children``: absent children of sparse indexes, "ns/repo@index -> child digest";
- counts: alive tags, manifests, blobs whose content was verified and their bytes.

Nothing is modified.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from moorage.db.engine import Database
from moorage.services.fsck import SPARSE_CHILD, FsckOptions, FsckReport, FsckService, Severity
from moorage.storage.base import StorageDriver


@dataclass
class ConsistencyReport:
    tags: int = 0
    manifests: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    sparse_children: list[str] = field(default_factory=list)  # "repo@index -> child"
    problems: list[str] = field(default_factory=list)
    fsck: FsckReport | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


async def check_consistency(
    db: Database, storage: StorageDriver, repositories: Sequence[str] | None = None
) -> ConsistencyReport:
    """Check every alive tag of ``repositories`` ("ns/name"; all when None)."""
    options = FsckOptions(repositories=None if repositories is None else list(repositories))
    report = await FsckService(db, storage).run(options)
    return ConsistencyReport(
        tags=report.tags,
        manifests=report.manifests,
        blobs=report.blobs_verified,
        blob_bytes=report.bytes_verified,
        sparse_children=[f.subject for f in report.findings if f.kind == SPARSE_CHILD],
        problems=[f"{f.kind}: {f.subject}: {f.detail}" for f in report.of(Severity.CORRUPTION)],
        fsck=report,
    )


async def staging_leftovers(storage: StorageDriver) -> list[str]:
    """What is left in the staging areas, whatever its age: keys under ``uploads/``, and the
    driver's unfinished writes (filesystem ``_tmp/`` files, S3 multipart uploads)."""
    found = [info.key async for info in storage.scan("uploads")]
    found += [f"pending:{write.key}" async for write in storage.pending_writes()]
    return found
