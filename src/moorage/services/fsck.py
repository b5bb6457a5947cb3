"""`moorage fsck`: check that every tag → manifest → blob chain is present and intact, find
garbage, and optionally remove the garbage.

Knows nothing of HTTP or the command line: ``FsckService.run(options, progress)`` returns an
``FsckReport``. The phases:

1. **blobs**: every blob row (in scope) has its storage object, of the recorded size, whose
   content hashes to its digest (streamed, ``jobs`` blobs at a time; ``verify_content=False``
   compares sizes only). A bad blob that a manifest references is corruption; a bad blob that
   nothing references is garbage.
2. **manifests**, repository by repository: each payload hashes to its digest and parses; every
   blob it references is recorded (manifest_blobs), linked into the repository, of the size the
   descriptor says and intact (phase 1); every child of an index is recorded and present, or
   absent by design (a sparse index made by an architecture-filtered mirror: a notice). Every
   alive tag's manifest exists, and a tag is corrupt when anything in its chain (its manifest,
   an index's children, their blobs) is. Manifests reachable from no tag are noticed:
   `moorage gc` deletes them after the grace period.
3. **storage** (whole registry only): objects under ``blobs/`` without a blob row (orphan
   bytes, e.g. from a gc killed between deleting rows and deleting bytes).
4. **staging** (whole registry only): stale upload sessions, ``uploads/`` prefixes without a
   session, writes the storage driver never finished (``_tmp/`` files, S3 multipart uploads),
   whose last activity is older than ``staging_age`` (see services/staging.py).

Severities: **corruption** is referenced content that is missing or wrong — reported, never
deleted; **garbage** is removable, and ``repair=True`` removes it with the same claims and locks
as gc, so a repair is safe while the registry serves; a **notice** is a normal state worth
knowing. Blob problems are re-checked before they are reported, so a blob that gc or a push
changed while fsck ran does not show up as a problem.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from moorage.db.base import utcnow
from moorage.db.engine import Database
from moorage.db.models import Manifest
from moorage.db.queries.blobs import BlobQueries
from moorage.db.queries.fsck import BlobRef, BlobRow, ChildRef, FsckQueries
from moorage.db.queries.gc import GcQueries
from moorage.errors import MoorageError, StorageError, StorageNotFound
from moorage.oci.digest import Digest
from moorage.oci.manifest import ParsedManifest, parse_manifest
from moorage.services.gc import delete_unowned_bytes, reachable
from moorage.services.staging import StagingItem, find_staging_garbage, remove_staging_item
from moorage.storage import paths
from moorage.storage.base import ObjectInfo, StorageDriver


class Severity(StrEnum):
    CORRUPTION = "corruption"
    GARBAGE = "garbage"
    NOTICE = "notice"


# corruption
TAG_MANIFEST_MISSING = "tag_manifest_missing"
CORRUPT_TAG = "corrupt_tag"
MANIFEST_INVALID = "manifest_invalid"
MANIFEST_BLOB_MISSING = "manifest_blob_missing"
MANIFEST_BLOB_UNLINKED = "manifest_blob_unlinked"
MANIFEST_BLOB_SIZE = "manifest_blob_size_mismatch"
MANIFEST_CHILD_MISSING = "manifest_child_missing"
MANIFEST_CHILD_UNATTACHED = "manifest_child_unattached"
BLOB_MISSING = "blob_missing"
BLOB_SIZE_MISMATCH = "blob_size_mismatch"
BLOB_DIGEST_MISMATCH = "blob_digest_mismatch"
BLOB_UNREADABLE = "blob_unreadable"
# garbage (repairable)
ORPHAN_BYTES = "orphan_bytes"
BLOB_ROW_WITHOUT_BYTES = "blob_row_without_bytes"
UNREFERENCED_BLOB_CORRUPT = "unreferenced_blob_corrupt"
# (plus services.staging: stale_upload, orphan_staging, pending_write)
# notices
UNREFERENCED_MANIFEST = "unreferenced_manifest"
SPARSE_CHILD = "sparse_child"
UNKNOWN_OBJECT = "unknown_object"

REPAIRED = "repaired"
VANISHED = "vanished"  # no longer garbage by the time of the repair (in use again, or gone)

BLOB_PAGE = 500
MANIFEST_PAGE = 100
HASH_IN_THREAD = 64 * 1024  # hash pieces at least this big in a worker thread


@dataclass
class Finding:
    kind: str
    severity: Severity
    subject: str  # a tag "ns/repo:tag", a manifest "ns/repo@digest", a digest, a storage key
    detail: str
    size: int | None = None
    repair: str | None = None  # REPAIRED, VANISHED, "failed: …", or None (not attempted)

    @property
    def outstanding(self) -> bool:
        """Still a problem: corruption, or garbage that was not repaired."""
        if self.severity is Severity.CORRUPTION:
            return True
        return self.severity is Severity.GARBAGE and self.repair not in {REPAIRED, VANISHED}

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": str(self.severity),
            "subject": self.subject,
            "detail": self.detail,
            "size": self.size,
            "repair": self.repair,
        }


@dataclass
class FsckReport:
    scope: list[str] | None  # repositories checked; None: the whole registry
    verify_content: bool
    repair: bool
    repositories: int = 0
    tags: int = 0
    manifests: int = 0
    blobs: int = 0  # blob rows in scope
    blobs_verified: int = 0  # of which the content was hashed (or, quick, the size compared)
    bytes_verified: int = 0
    storage_objects: int = 0  # objects found under blobs/
    staging_in_flight: int = 0  # staging objects and writes younger than staging_age
    seconds: float = 0.0
    corrupt_tags: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def of(self, severity: Severity) -> list[Finding]:
        return [f for f in self.findings if f.severity is severity]

    def kinds(self, severity: Severity | None = None) -> dict[str, int]:
        """Number of findings per kind (of one severity, or all)."""
        counts: dict[str, int] = {}
        for finding in self.findings:
            if severity is None or finding.severity is severity:
                counts[finding.kind] = counts.get(finding.kind, 0) + 1
        return counts

    @property
    def outstanding(self) -> list[Finding]:
        return [f for f in self.findings if f.outstanding]

    @property
    def ok(self) -> bool:
        """No corruption and no garbage left (notices do not count)."""
        return not self.outstanding

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "scope": self.scope,
            "verify_content": self.verify_content,
            "repair": self.repair,
            "counts": {
                "repositories": self.repositories,
                "tags": self.tags,
                "manifests": self.manifests,
                "blobs": self.blobs,
                "blobs_verified": self.blobs_verified,
                "bytes_verified": self.bytes_verified,
                "storage_objects": self.storage_objects,
                "staging_in_flight": self.staging_in_flight,
            },
            "summary": {str(s): self.kinds(s) for s in Severity},
            "corrupt_tags": self.corrupt_tags,
            "findings": [f.to_dict() for f in self.findings],
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class FsckOptions:
    verify_content: bool = True
    repair: bool = False
    staging_age: dt.timedelta = dt.timedelta(days=1)
    repositories: Sequence[str] | None = None  # "namespace/name"; None: the whole registry
    jobs: int = 4  # blobs verified concurrently


class Progress(Protocol):
    """Told about long work, e.g. to draw a progress bar. ``total`` None: unknown length."""

    def begin(self, label: str, total: int | None) -> None: ...

    def advance(self, amount: int) -> None: ...

    def end(self) -> None: ...


class NoProgress:
    def begin(self, label: str, total: int | None) -> None:
        return None

    def advance(self, amount: int) -> None:
        return None

    def end(self) -> None:
        return None


Repair = Callable[[], Awaitable[str]]


class FsckService:
    def __init__(self, db: Database, storage: StorageDriver) -> None:
        self.db = db
        self.storage = storage

    async def run(self, options: FsckOptions, progress: Progress | None = None) -> FsckReport:
        return await _Run(self.db, self.storage, options, progress or NoProgress()).run()


class _Run:
    def __init__(
        self, db: Database, storage: StorageDriver, options: FsckOptions, progress: Progress
    ) -> None:
        self.db = db
        self.storage = storage
        self.options = options
        self.progress = progress
        scope = None if options.repositories is None else list(options.repositories)
        self.report = FsckReport(scope, options.verify_content, options.repair)
        self.bad_blobs: dict[str, str] = {}  # digest -> what is wrong with its bytes
        self.repairs: list[tuple[Finding, Repair]] = []

    def add(
        self,
        kind: str,
        severity: Severity,
        subject: str,
        detail: str,
        size: int | None = None,
        repair: Repair | None = None,
    ) -> Finding:
        finding = Finding(kind, severity, subject, detail, size)
        self.report.findings.append(finding)
        if repair is not None:
            self.repairs.append((finding, repair))
        return finding

    async def run(self) -> FsckReport:
        started = time.monotonic()
        async with self.db.transaction(readonly=True) as session:
            repos = await FsckQueries(session).repositories(self.options.repositories)
        self.report.repositories = len(repos)
        scoped = self.options.repositories is not None
        repo_ids = [repo_id for repo_id, _ in repos]
        await self.check_blobs(repo_ids if scoped else None)
        await self.check_manifests(repos)
        if not scoped:
            await self.check_storage()
            await self.check_staging()
        if self.options.repair:
            await self.apply_repairs()
        self.report.seconds = time.monotonic() - started
        return self.report

    # --- 1. blobs ------------------------------------------------------------------------

    async def check_blobs(self, repo_ids: list[int] | None) -> None:
        async with self.db.transaction(readonly=True) as session:
            count, total = await FsckQueries(session).blob_totals(repo_ids)
        self.report.blobs = count
        verify = self.options.verify_content
        self.progress.begin("verifying blobs" if verify else "checking blobs", total or count)
        slots = asyncio.Semaphore(max(1, self.options.jobs))
        after = 0
        while True:
            async with self.db.transaction(readonly=True) as session:
                page = await FsckQueries(session).blob_page(after, BLOB_PAGE, repo_ids)
            if not page:
                break
            after = page[-1].id
            results = await asyncio.gather(*(self.verify_blob(row, slots) for row in page))
            for row, problem in zip(page, results, strict=True):
                if problem is not None:
                    await self.blob_problem(row, *problem)
        self.progress.end()

    async def verify_blob(self, row: BlobRow, slots: asyncio.Semaphore) -> tuple[str, str] | None:
        """What is wrong with the stored bytes of ``row``, as (kind, detail), or None."""
        async with slots:
            try:
                return await self._verify_bytes(row)
            except StorageNotFound:
                return BLOB_MISSING, "storage object vanished while being read"
            except StorageError as exc:
                return BLOB_UNREADABLE, f"storage error: {exc}"
            except MoorageError as exc:  # e.g. a row whose digest does not parse
                return BLOB_UNREADABLE, exc.message
            finally:
                if not self.options.verify_content:
                    self.progress.advance(1)  # the bar counts blobs; with content, bytes

    async def _verify_bytes(self, row: BlobRow) -> tuple[str, str] | None:
        digest = Digest.parse(row.digest)
        key = paths.blob_key(digest)
        stored = await self.storage.stat(key)
        verify = self.options.verify_content
        if stored is None:
            if verify:
                self.progress.advance(row.size)
            return BLOB_MISSING, f"storage object {key} is absent"
        if stored != row.size:
            if verify:
                self.progress.advance(row.size)
            return BLOB_SIZE_MISMATCH, f"object {key} is {stored} bytes, row says {row.size}"
        if not verify:
            self.report.blobs_verified += 1
            return None
        hasher = hashlib.new(digest.algorithm)
        read = 0
        async for piece in self.storage.read(key):
            if len(piece) >= HASH_IN_THREAD:
                await asyncio.to_thread(hasher.update, piece)
            else:
                hasher.update(piece)
            read += len(piece)
            self.progress.advance(len(piece))
        if read < row.size:
            self.progress.advance(row.size - read)
        self.report.blobs_verified += 1
        self.report.bytes_verified += read
        if read != row.size:
            return BLOB_SIZE_MISMATCH, f"read {read} bytes from {key}, row says {row.size}"
        if hasher.hexdigest() != digest.hex:
            return (
                BLOB_DIGEST_MISMATCH,
                f"content of {key} hashes to {digest.algorithm}:{hasher.hexdigest()}",
            )
        return None

    async def blob_problem(self, row: BlobRow, kind: str, detail: str) -> None:
        # Re-check: gc may have deleted the row (and then the bytes) while we read.
        async with self.db.transaction(readonly=True) as session:
            queries = FsckQueries(session)
            current = await queries.blob(row.id)
            references = await queries.reference_count(row.id) if current else 0
        if current is None:
            return
        if (
            kind == BLOB_MISSING
            and await self.storage.stat(paths.blob_key(Digest.parse(row.digest))) == row.size
        ):
            return
        self.bad_blobs[row.digest] = kind
        if references or kind == BLOB_UNREADABLE:
            plural = "manifest" if references == 1 else "manifests"
            self.add(
                kind,
                Severity.CORRUPTION,
                row.digest,
                f"{detail}; referenced by {references} {plural}",
                row.size,
            )
        elif kind == BLOB_MISSING:
            self.add(
                BLOB_ROW_WITHOUT_BYTES,
                Severity.GARBAGE,
                row.digest,
                f"{detail}; no manifest references it (repair deletes the row)",
                row.size,
                functools.partial(self.delete_blob_row, row, with_bytes=False),
            )
        else:
            self.add(
                UNREFERENCED_BLOB_CORRUPT,
                Severity.GARBAGE,
                row.digest,
                f"{kind}: {detail}; no manifest references it (repair deletes row and bytes)",
                row.size,
                functools.partial(self.delete_blob_row, row, with_bytes=True),
            )

    # --- 2. manifests and tags -----------------------------------------------------------

    async def check_manifests(self, repos: list[tuple[int, str]]) -> None:
        async with self.db.transaction(readonly=True) as session:
            total = await FsckQueries(session).manifest_count([r for r, _ in repos]) if repos else 0
        self.progress.begin("checking manifests", total)
        for repo_id, name in repos:
            await self.check_repository(repo_id, name)
        self.progress.end()

    async def check_repository(self, repo_id: int, name: str) -> None:
        async with self.db.transaction(readonly=True) as session:
            gc_queries = GcQueries(session)
            manifests = list(await gc_queries.manifests(repo_id))
            edges = list(await gc_queries.child_edges(repo_id))
            tags = await FsckQueries(session).alive_tags(repo_id)
        digest_of = {m[0]: m[1] for m in manifests}
        problems: dict[int, str] = {}
        ids = sorted(digest_of)
        for low in range(0, len(ids), MANIFEST_PAGE):
            page = ids[low : low + MANIFEST_PAGE]
            async with self.db.transaction(readonly=True) as session:
                queries = FsckQueries(session)
                rows = await queries.manifests(page)
                refs = await queries.blob_refs(repo_id, page)
                children = await queries.child_refs(page)
            refs_of: dict[int, list[BlobRef]] = {}
            for ref in refs:
                refs_of.setdefault(ref.manifest_id, []).append(ref)
            children_of: dict[int, list[ChildRef]] = {}
            for child in children:
                children_of.setdefault(child.parent_id, []).append(child)
            for manifest in rows:
                cause = await self.check_manifest(
                    repo_id,
                    name,
                    manifest,
                    refs_of.get(manifest.id, []),
                    children_of.get(manifest.id, []),
                )
                if cause is not None:
                    problems[manifest.id] = cause
            self.progress.advance(len(page))
        self.report.manifests += len(manifests)

        edges_of: dict[int, list[int]] = {}
        for parent, child_id in edges:
            edges_of.setdefault(parent, []).append(child_id)
        for tag, manifest_id, exists in tags:
            self.report.tags += 1
            subject = f"{name}:{tag}"
            if not exists:
                self.report.corrupt_tags.append(subject)
                self.add(
                    TAG_MANIFEST_MISSING,
                    Severity.CORRUPTION,
                    subject,
                    f"the tag points at manifest row {manifest_id}, which does not exist",
                )
                continue
            cause = _chain_problem(manifest_id, edges_of, problems, digest_of)
            if cause is not None:
                self.report.corrupt_tags.append(subject)
                self.add(CORRUPT_TAG, Severity.CORRUPTION, subject, cause)

        tagged = {manifest_id for _, manifest_id, exists in tags if exists}
        keep = reachable(manifests, tagged, edges)
        for manifest_id, digest, _subject, created in manifests:
            if manifest_id not in keep:
                self.add(
                    UNREFERENCED_MANIFEST,
                    Severity.NOTICE,
                    f"{name}@{digest}",
                    f"reachable from no tag since at most {created:%Y-%m-%d %H:%M:%S} UTC; "
                    "`moorage gc` deletes it after the grace period",
                )

    async def check_manifest(
        self,
        repo_id: int,
        name: str,
        manifest: Manifest,
        refs: list[BlobRef],
        children: list[ChildRef],
    ) -> str | None:
        """Findings for one manifest; returns the first problem (for its tags), or None."""
        where = f"{name}@{manifest.digest}"
        causes: list[str] = []

        def problem(kind: str, detail: str) -> None:
            causes.append(f"{kind}: {detail}")
            self.add(kind, Severity.CORRUPTION, where, detail)

        payload = bytes(manifest.payload)
        try:
            digest = Digest.parse(manifest.digest)
        except MoorageError as exc:
            problem(MANIFEST_INVALID, exc.message)
            return causes[0]
        if hashlib.new(digest.algorithm, payload).hexdigest() != digest.hex:
            problem(MANIFEST_INVALID, "the stored payload does not hash to the manifest digest")
        if len(payload) != manifest.size:
            problem(MANIFEST_INVALID, f"payload is {len(payload)} bytes, row says {manifest.size}")
        try:
            parsed = parse_manifest(payload, manifest.media_type, digest.algorithm)
        except MoorageError as exc:
            problem(MANIFEST_INVALID, f"payload does not parse: {exc.message}")
            return causes[0]
        self.check_blob_refs(name, parsed, refs, problem, causes)
        await self.check_children(repo_id, where, parsed, children, problem)
        return causes[0] if causes else None

    def check_blob_refs(
        self,
        name: str,
        parsed: ParsedManifest,
        refs: list[BlobRef],
        problem: Callable[[str, str], None],
        causes: list[str],
    ) -> None:
        recorded = {ref.digest: ref for ref in refs}
        for descriptor in {str(b.digest): b for b in parsed.blobs}.values():
            blob = str(descriptor.digest)
            ref = recorded.get(blob)
            if ref is None:
                problem(
                    MANIFEST_BLOB_MISSING,
                    f"blob {blob} has no blob row or no manifest_blobs reference",
                )
                continue
            if not ref.linked:
                problem(MANIFEST_BLOB_UNLINKED, f"blob {blob} is not linked into {name}")
            if ref.size != descriptor.size:
                problem(
                    MANIFEST_BLOB_SIZE,
                    f"blob {blob} row says {ref.size} bytes, the manifest {descriptor.size}",
                )
            if blob in self.bad_blobs:
                # Reported once as a blob finding; here it only makes the tags corrupt.
                causes.append(f"blob {blob}: {self.bad_blobs[blob]}")

    async def check_children(
        self,
        repo_id: int,
        where: str,
        parsed: ParsedManifest,
        children: list[ChildRef],
        problem: Callable[[str, str], None],
    ) -> None:
        recorded = {child.digest: child for child in children}
        absent: list[str] = []
        for child_digest in dict.fromkeys(str(c.digest) for c in parsed.children):
            child = recorded.get(child_digest)
            if child is None:
                problem(MANIFEST_CHILD_MISSING, f"child {child_digest} is not in manifest_children")
            elif child.child_id is None:
                absent.append(child_digest)
            elif child.child_repository_id is None:
                problem(
                    MANIFEST_CHILD_MISSING,
                    f"child {child_digest} points at manifest row {child.child_id}, "
                    "which does not exist",
                )
            elif child.child_repository_id != repo_id:
                problem(
                    MANIFEST_CHILD_MISSING,
                    f"child {child_digest} belongs to repository {child.child_repository_id}",
                )
        if not absent:
            return
        async with self.db.transaction(readonly=True) as session:
            present = await FsckQueries(session).manifest_ids_by_digest(repo_id, absent)
        for child_digest in absent:
            if child_digest in present:
                problem(
                    MANIFEST_CHILD_UNATTACHED,
                    f"child {child_digest} exists but is not attached to the index",
                )
            else:
                self.add(
                    SPARSE_CHILD,
                    Severity.NOTICE,
                    f"{where} -> {child_digest}",
                    "absent by design (sparse index of an architecture-filtered mirror)",
                )

    # --- 3. storage ----------------------------------------------------------------------

    async def check_storage(self) -> None:
        self.progress.begin("scanning storage", None)
        batch: list[tuple[Digest, ObjectInfo]] = []
        async for info in self.storage.scan(paths.BLOBS):
            self.report.storage_objects += 1
            self.progress.advance(1)
            digest = paths.blob_digest(info.key)
            if digest is None:
                self.add(
                    UNKNOWN_OBJECT,
                    Severity.NOTICE,
                    info.key,
                    "not a blob key; left alone",
                    info.size,
                )
                continue
            batch.append((digest, info))
            if len(batch) >= BLOB_PAGE:
                await self.find_orphans(batch)
                batch = []
        await self.find_orphans(batch)
        self.progress.end()

    async def find_orphans(self, batch: list[tuple[Digest, ObjectInfo]]) -> None:
        if not batch:
            return
        async with self.db.transaction(readonly=True) as session:
            owned = await BlobQueries(session).existing(str(d) for d, _ in batch)
        for digest, info in batch:
            if str(digest) in owned:
                continue
            self.add(
                ORPHAN_BYTES,
                Severity.GARBAGE,
                info.key,
                f"no blob row for {digest} (written {info.modified:%Y-%m-%d %H:%M:%S} UTC)",
                info.size,
                functools.partial(self.delete_orphan, digest),
            )

    # --- 4. staging ----------------------------------------------------------------------

    async def check_staging(self) -> None:
        before = utcnow() - self.options.staging_age
        scan = await find_staging_garbage(self.db, self.storage, before)
        self.report.staging_in_flight = scan.in_flight
        for item in scan.items:
            self.add(
                item.kind,
                Severity.GARBAGE,
                item.subject,
                f"{item.objects} objects, last activity {item.last_activity:%Y-%m-%d %H:%M:%S} UTC",
                item.size,
                functools.partial(self.remove_staging, item, before),
            )

    # --- repairs -------------------------------------------------------------------------

    async def apply_repairs(self) -> None:
        self.progress.begin("repairing", len(self.repairs))
        for finding, repair in self.repairs:
            try:
                finding.repair = await repair()
            except Exception as exc:  # reported per finding; the other repairs go on
                finding.repair = f"failed: {type(exc).__name__}: {exc}"
            self.progress.advance(1)
        self.progress.end()

    async def delete_orphan(self, digest: Digest) -> str:
        deleted = await delete_unowned_bytes(self.db, self.storage, [digest])
        return REPAIRED if deleted else VANISHED

    async def delete_blob_row(self, row: BlobRow, *, with_bytes: bool) -> str:
        """Delete an unreferenced blob row whose bytes are gone (or wrong: then the bytes too).

        One transaction holding the row: a commit of the same digest waits, then writes fresh
        bytes. If the commit of this transaction failed after the bytes were deleted, a row
        without bytes would remain: garbage the next fsck repairs, never corruption.
        """
        digest = Digest.parse(row.digest)
        key = paths.blob_key(digest)
        async with self.db.transaction() as session:
            queries = BlobQueries(session)
            blob = await queries.lock_unreferenced(row.id)
            if blob is None:
                return VANISHED  # deleted meanwhile, or a manifest references it now
            if with_bytes:
                await self.storage.delete(key)
            elif await self.storage.stat(key) == blob.size:
                return VANISHED  # its bytes are back (re-pushed)
            await queries.delete(blob.id)
        return REPAIRED

    async def remove_staging(self, item: StagingItem, before: dt.datetime) -> str:
        removed = await remove_staging_item(self.db, self.storage, item, before)
        return REPAIRED if removed else VANISHED


def _chain_problem(
    manifest_id: int,
    children: dict[int, list[int]],
    problems: dict[int, str],
    digest_of: dict[int, str],
) -> str | None:
    """The first problem in the chain of ``manifest_id`` (itself, then its children)."""
    seen: set[int] = set()
    stack = [manifest_id]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        if current in problems:
            return f"manifest {digest_of.get(current, current)}: {problems[current]}"
        stack.extend(children.get(current, ()))
    return None
