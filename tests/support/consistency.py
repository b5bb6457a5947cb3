"""Registry consistency check: what `moorage fsck` will do, usable from any test today.

For every alive tag (of every repository, or of the repositories named), walk tag → manifest →
referenced blobs and child manifests and check, in the database and in storage:

- the tag's manifest row belongs to the tag's repository, and its payload hashes to its digest
  and parses as a manifest;
- every blob the payload references (config, layers) has a blob row, is linked into the
  repository, is recorded in manifest_blobs, and its storage object exists, has the recorded
  size and hashes to its digest (the bytes are read back: this proves nothing half-written or
  corrupt became visible);
- every child manifest of an index is recorded in manifest_children; a present child is a
  manifest of the same repository and is checked recursively; an absent child (child_id NULL)
  is allowed only for sparse indexes and is reported in ``sparse_children``, unless a manifest
  with that digest does exist in the repository, which is a problem (unattached child).

Nothing is modified. Problems are returned as readable strings, never raised, so a test can
assert ``report.problems == []`` and see them all at once.

``staging_leftovers`` lists what interrupted writes left behind (uploads/, _tmp/, S3 multipart
uploads): garbage for `moorage gc`, never visible content.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select

from moorage.db.engine import Database
from moorage.db.models import (
    Blob,
    Manifest,
    ManifestBlob,
    ManifestChild,
    Repository,
    RepositoryBlob,
    Tag,
)
from moorage.errors import MoorageError, StorageError
from moorage.oci.digest import Digest
from moorage.oci.manifest import parse_manifest
from moorage.storage import paths
from moorage.storage.base import StorageDriver


@dataclass
class ConsistencyReport:
    tags: int = 0
    manifests: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    sparse_children: list[str] = field(default_factory=list)  # "repo@index -> child"
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Checker:
    db: Database
    storage: StorageDriver
    report: ConsistencyReport = field(default_factory=ConsistencyReport)
    _manifests_done: set[int] = field(default_factory=set)
    _blobs_done: dict[str, bool] = field(default_factory=dict)  # digest -> storage ok

    def problem(self, text: str) -> None:
        self.report.problems.append(text)

    async def run(self, repositories: Sequence[str] | None) -> ConsistencyReport:
        async with self.db.transaction(readonly=True) as session:
            stmt = select(Repository)
            repos = list((await session.execute(stmt)).scalars().all())
        for repo in repos:
            if repositories is not None and repo.full_name not in repositories:
                continue
            await self.check_repository(repo)
        return self.report

    async def check_repository(self, repo: Repository) -> None:
        async with self.db.transaction(readonly=True) as session:
            rows = await session.execute(
                select(Tag.name, Tag.manifest_id).where(
                    Tag.repository_id == repo.id, Tag.lifetime_end_ms.is_(None)
                )
            )
            tags = rows.all()
        for name, manifest_id in tags:
            self.report.tags += 1
            await self.check_manifest(repo, manifest_id, f"{repo.full_name}:{name}")

    async def check_manifest(self, repo: Repository, manifest_id: int, where: str) -> None:
        if manifest_id in self._manifests_done:
            return
        self._manifests_done.add(manifest_id)
        async with self.db.transaction(readonly=True) as session:
            manifest = await session.get(Manifest, manifest_id)
            if manifest is None:
                self.problem(f"{where}: manifest row {manifest_id} is missing")
                return
            blob_rows = await session.execute(
                select(Blob.digest, Blob.size, RepositoryBlob.repository_id)
                .join(ManifestBlob, ManifestBlob.blob_id == Blob.id)
                .outerjoin(
                    RepositoryBlob,
                    (RepositoryBlob.blob_id == Blob.id) & (RepositoryBlob.repository_id == repo.id),
                )
                .where(ManifestBlob.manifest_id == manifest_id)
            )
            recorded_blobs: dict[str, tuple[int, int | None]] = {
                row[0]: (row[1], row[2]) for row in blob_rows.all()
            }
            child_rows = await session.execute(
                select(ManifestChild.child_digest, ManifestChild.child_id).where(
                    ManifestChild.parent_id == manifest_id
                )
            )
            recorded_children = {row[0]: row[1] for row in child_rows.all()}
        self.report.manifests += 1
        where = f"{where} ({manifest.digest})"
        if manifest.repository_id != repo.id:
            self.problem(f"{where}: manifest belongs to repository {manifest.repository_id}")
        payload = bytes(manifest.payload)
        digest = Digest.parse(manifest.digest)
        if hashlib.new(digest.algorithm, payload).hexdigest() != digest.hex:
            self.problem(f"{where}: payload does not hash to the manifest digest")
        if len(payload) != manifest.size:
            self.problem(f"{where}: payload is {len(payload)} bytes, row says {manifest.size}")
        try:
            parsed = parse_manifest(payload, manifest.media_type, digest.algorithm)
        except MoorageError as exc:
            self.problem(f"{where}: payload does not parse: {exc.message}")
            return
        for descriptor in {str(b.digest): b for b in parsed.blobs}.values():
            await self.check_blob(str(descriptor.digest), descriptor.size, recorded_blobs, where)
        for child in {str(c.digest): c for c in parsed.children}.values():
            await self.check_child(repo, str(child.digest), recorded_children, where)

    async def check_blob(
        self,
        digest: str,
        size: int,
        recorded: dict[str, tuple[int, int | None]],
        where: str,
    ) -> None:
        if digest not in recorded:
            self.problem(f"{where}: blob {digest} is not recorded (missing row or reference)")
            return
        row_size, linked_repo = recorded[digest]
        if linked_repo is None:
            self.problem(f"{where}: blob {digest} is not linked into the repository")
        if row_size != size:
            self.problem(f"{where}: blob {digest} row size {row_size}, manifest says {size}")
        if digest not in self._blobs_done:
            self._blobs_done[digest] = await self.check_blob_bytes(digest, row_size)
        if not self._blobs_done[digest]:
            self.problem(f"{where}: blob {digest} is missing or corrupt in storage")

    async def check_blob_bytes(self, digest: str, size: int) -> bool:
        parsed = Digest.parse(digest)
        key = paths.blob_key(parsed)
        if await self.storage.stat(key) != size:
            return False
        hasher = hashlib.new(parsed.algorithm)
        total = 0
        try:
            async for chunk in self.storage.read(key):
                hasher.update(chunk)
                total += len(chunk)
        except StorageError:
            return False
        self.report.blobs += 1
        self.report.blob_bytes += total
        return total == size and hasher.hexdigest() == parsed.hex

    async def check_child(
        self, repo: Repository, digest: str, recorded: dict[str, int | None], where: str
    ) -> None:
        if digest not in recorded:
            self.problem(f"{where}: child {digest} is not recorded in manifest_children")
            return
        child_id = recorded[digest]
        if child_id is not None:
            await self.check_manifest(repo, child_id, f"{where} -> child")
            return
        async with self.db.transaction(readonly=True) as session:
            existing = await session.execute(
                select(Manifest.id).where(
                    Manifest.repository_id == repo.id, Manifest.digest == digest
                )
            )
            present = existing.scalar_one_or_none()
        if present is not None:
            self.problem(f"{where}: child {digest} exists but is not attached to its index")
            await self.check_manifest(repo, present, f"{where} -> child")
            return
        self.report.sparse_children.append(f"{where} -> {digest}")


async def check_consistency(
    db: Database, storage: StorageDriver, repositories: Sequence[str] | None = None
) -> ConsistencyReport:
    """Check every alive tag of ``repositories`` ("ns/name"; all when None)."""
    return await _Checker(db, storage).run(repositories)


async def staging_leftovers(storage: StorageDriver) -> list[str]:
    """What is left in the staging areas: keys under ``uploads/`` and the filesystem driver's
    ``_tmp/``, and (S3) multipart uploads that were never completed or aborted."""
    found = [key async for key in storage.list(paths.UPLOADS)]
    found += [key async for key in storage.list("_tmp")]
    client = getattr(storage, "client", None)
    bucket = getattr(storage, "bucket", None)
    if client is not None and bucket is not None:
        prefix = getattr(storage, "prefix", "")

        def multipart() -> list[str]:
            listed = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
            return [f"multipart:{u['Key']}" for u in listed.get("Uploads", [])]

        found += await asyncio.to_thread(multipart)
    return found
