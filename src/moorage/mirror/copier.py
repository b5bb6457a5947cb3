"""Copy one tag's content from upstream into local storage, invariants first.

Order inside a tag: blobs (streamed, digest-verified) → child manifests → the tag's manifest,
which ManifestService stores only if every blob and child it references is present. A failure
or a cancel at any point leaves no tag pointing at missing content.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from moorage.db.queries.blobs import BlobQueries
from moorage.errors import ManifestUnknown
from moorage.mirror import errors as e
from moorage.mirror.commit_queue import CommitQueue
from moorage.mirror.filters import available_architectures, select_platforms
from moorage.mirror.upstream import FetchedManifest, UpstreamClient
from moorage.oci.digest import Digest
from moorage.oci.manifest import Descriptor, ParsedManifest, parse_manifest
from moorage.services.blobs import VerifiedBlob
from moorage.services.registry import RegistryServices
from moorage.services.repositories import RepoRef
from moorage.storage import paths

MAX_CONFIG_BYTES = 4 * 1024 * 1024


@dataclass
class CopyStats:
    bytes_copied: int = 0  # received from upstream so far, counted while blobs stream
    blobs_fetched: int = 0
    blobs_linked: int = 0


@dataclass
class _Fetch:
    """One blob this sync is providing, shared by every tag that needs it.

    The download runs in its own task, so a tag that fails (and cancels its own waits) does not
    cancel a download another tag still waits for; it is cancelled once no tag waits for it.
    """

    key: str
    future: asyncio.Future[None]
    task: asyncio.Task[None] | None = None
    waiters: int = 0


@dataclass
class Copier:
    upstream: UpstreamClient
    registry: RegistryServices
    repo: RepoRef
    blob_slots: asyncio.Semaphore
    architectures: list[str] = field(default_factory=list)
    max_entries: int = 1000
    stats: CopyStats = field(default_factory=CopyStats)
    _inflight: dict[str, _Fetch] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _commits: CommitQueue = field(init=False)

    def __post_init__(self) -> None:
        self._commits = CommitQueue(self.registry.blobs, self.repo, self._discard)

    async def copy_tag(self, tag: str, also: Callable[[AsyncSession], None] | None = None) -> bool:
        """Copy ``tag``; False when the architecture filter skips a single-arch image.

        ``also`` writes rows (the tag's audit entry) in the transaction that moves the tag.
        """
        fetched = await self.upstream.get_manifest(tag)
        parsed = self._verify(fetched, None)
        sparse = False
        if parsed.is_index:
            sparse = await self._copy_children(fetched, parsed)
        else:
            if self.architectures and not await self._arch_wanted(parsed):
                return False
            await self._ensure_blobs(parsed.blobs)
        if parsed.is_index and parsed.blobs:
            await self._ensure_blobs(parsed.blobs)
        await self.registry.manifests.put(
            self.repo.full_name,
            tag,
            fetched.payload,
            fetched.media_type,
            allow_missing_children=sparse,
            also=also,
        )
        return True

    async def complete(self, tag: str) -> bool:
        """Whether the local ``tag`` has every child the architecture filter now selects.

        An unchanged upstream digest is not enough to skip a sparse index: after the filter
        was widened, the platforms it now selects must still be fetched.
        """
        try:
            stored = await self.registry.manifests.get(self.repo, tag)
        except ManifestUnknown:
            return False
        parsed = parse_manifest(stored.payload, stored.media_type)
        wanted = [str(c.digest) for c in parsed.children]
        if parsed.is_index and self.architectures:
            entries = json.loads(stored.payload).get("manifests") or []
            selected = select_platforms(entries, self.architectures, self.max_entries)
            wanted = [str(entry.get("digest")) for entry in selected]
        for digest in dict.fromkeys(wanted):
            try:
                await self.registry.manifests.get(self.repo, digest)
            except ManifestUnknown:
                return False
        return True

    def _verify(self, fetched: FetchedManifest, expected: str | None) -> ParsedManifest:
        """Check the manifest's bytes against the digests claimed for them, then parse them.

        The bytes are hashed before parsing, so corrupted bytes are a digest mismatch even
        when they no longer parse.
        """
        actual = str(Digest.of(fetched.payload))
        for claimed in (expected, fetched.digest):
            if claimed and claimed != actual and Digest.parse(claimed).algorithm == "sha256":
                raise e.DigestMismatch(f"manifest digest is {actual}, upstream says {claimed}")
        return parse_manifest(fetched.payload, fetched.media_type or None)

    async def _copy_children(self, fetched: FetchedManifest, parsed: ParsedManifest) -> bool:
        """Copy an index's children (all, or the filtered platforms). True if sparse."""
        wanted = {str(c.digest) for c in parsed.children}
        sparse = False
        if self.architectures:
            entries = json.loads(fetched.payload).get("manifests") or []
            selected = select_platforms(entries, self.architectures, self.max_entries)
            if not selected:
                raise e.NoMatchingArchitectures(
                    f"No matching architectures. Requested: {sorted(self.architectures)}, "
                    f"Available: {available_architectures(entries, self.max_entries)}"
                )
            wanted = {str(entry.get("digest")) for entry in selected}
            sparse = wanted != {str(c.digest) for c in parsed.children}
        children = [c for c in parsed.children if str(c.digest) in wanted]
        await _gather([self._copy_manifest(c) for c in children])
        return sparse

    async def _copy_manifest(self, descriptor: Descriptor) -> None:
        digest = str(descriptor.digest)
        try:
            await self.registry.manifests.get(self.repo, digest)
            return
        except ManifestUnknown:
            pass  # absent locally: fetch it
        fetched = await self.upstream.get_manifest(digest)
        parsed = self._verify(fetched, digest)
        if parsed.is_index:
            await _gather([self._copy_manifest(c) for c in parsed.children])
        await self._ensure_blobs(parsed.blobs)
        await self.registry.manifests.put(
            self.repo.full_name, digest, fetched.payload, fetched.media_type
        )

    async def _arch_wanted(self, parsed: ParsedManifest) -> bool:
        config = parsed.blobs[0] if parsed.blobs else None
        if config is None or config.size > MAX_CONFIG_BYTES:
            return True
        data = bytearray()
        async for chunk in self.upstream.stream_blob(str(config.digest)):
            data += chunk
            if len(data) > MAX_CONFIG_BYTES:
                return True
        try:
            arch = json.loads(bytes(data)).get("architecture")
        except (ValueError, AttributeError):
            return True
        return arch is None or arch in self.architectures

    async def _ensure_blobs(self, blobs: tuple[Descriptor, ...]) -> None:
        """Make ``blobs`` present in the repository: linked if stored anywhere, else fetched.

        A blob another tag of this sync is already providing is waited for, not fetched twice;
        if that tag gives it up (it failed or timed out) before the blob was stored, this tag
        provides it itself. What one round provides is looked up in one read and linked in one
        write.
        """
        pending = {str(b.digest): b for b in blobs}
        while pending:
            pending = await self._ensure_round(pending)

    async def _ensure_round(self, wanted: dict[str, Descriptor]) -> dict[str, Descriptor]:
        """One round of ``_ensure_blobs``; returns the blobs given up by another tag."""
        theirs = [self._inflight[key] for key in wanted if key in self._inflight]
        mine: dict[str, _Fetch] = {}
        loop = asyncio.get_running_loop()
        for key in wanted:
            if key not in self._inflight:
                mine[key] = self._inflight[key] = _Fetch(key, loop.create_future())
        try:
            to_fetch = await self._not_present(list(mine))
        except BaseException as exc:
            self._settle(mine.values(), exc)
            raise
        self._settle((mine[key] for key in mine if key not in to_fetch), None)
        for key in to_fetch:
            fetch = mine[key]
            fetch.task = asyncio.create_task(self._provide(wanted[key], fetch))
            self._tasks.add(fetch.task)
            fetch.task.add_done_callback(self._tasks.discard)
        fetches = [mine[key] for key in to_fetch] + theirs
        for fetch in fetches:
            fetch.waiters += 1
        try:
            stored = await _gather([self._settled(fetch) for fetch in fetches])
        finally:
            for fetch in fetches:
                fetch.waiters -= 1
                if fetch.waiters == 0 and fetch.task is not None and not fetch.future.done():
                    self._forget(fetch)  # a tag arriving now starts a fresh download
                    fetch.task.cancel()
        return {f.key: wanted[f.key] for f, ok in zip(fetches, stored, strict=True) if not ok}

    async def _settled(self, fetch: _Fetch) -> bool:
        """Wait for ``fetch``: True once stored, False if its owner gave it up unfinished."""
        try:
            await asyncio.shield(fetch.future)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if fetch.future.cancelled() and current is not None and not current.cancelling():
                return False
            raise
        return True

    async def _provide(self, descriptor: Descriptor, fetch: _Fetch) -> None:
        try:
            await self._fetch_blob(descriptor)
        except Exception as exc:  # the waiters re-raise it; the task itself ends quietly
            self._settle([fetch], exc)
            return
        except BaseException as exc:
            self._settle([fetch], exc)
            raise
        self._settle([fetch], None)

    def _forget(self, fetch: _Fetch) -> None:
        if self._inflight.get(fetch.key) is fetch:
            del self._inflight[fetch.key]

    def _settle(self, fetches: Iterable[_Fetch], failure: BaseException | None) -> None:
        """Resolve fetches; a failed blob is forgotten so a later tag retries it."""
        for fetch in fetches:
            if fetch.future.done():
                continue
            if failure is None:
                fetch.future.set_result(None)
                continue
            self._forget(fetch)
            if not isinstance(failure, Exception):  # cancelled
                fetch.future.cancel()
                continue
            fetch.future.set_exception(failure)
            fetch.future.exception()  # mark retrieved; waiters re-raise it themselves

    async def _not_present(self, digests: list[str]) -> set[str]:
        """Those of ``digests`` stored nowhere in the registry, after linking the others."""
        if not digests:
            return set()
        async with self.registry.blobs.db.transaction(readonly=True) as session:
            queries = BlobQueries(session)
            linked = set(await queries.linked_digests(self.repo.id, digests))
            known = await queries.existing(d for d in digests if d not in linked)
        missing = {d for d in digests if d not in linked and d not in known}
        if known:
            # Only blobs stored for another repository need this (writing) transaction: on
            # SQLite every write transaction takes the database's one write lock.
            now_linked = await self.registry.blobs.link_existing(
                self.repo, (Digest.parse(d) for d in known)
            )
            self.stats.blobs_linked += len(now_linked)
            missing |= known - now_linked
        return missing

    async def _fetch_blob(self, descriptor: Descriptor) -> None:
        storage = self.registry.blobs.storage
        staging = paths.staging_key(str(uuid.uuid4()))
        try:
            # The slot bounds connections and downloads only: a verified blob waits for the
            # database (SQLite: its one write lock) without keeping a download from starting.
            async with self.blob_slots:
                size = await self._download(descriptor, staging)
        except BaseException:
            await asyncio.shield(storage.delete_prefix(staging.rsplit("/", 1)[0]))
            raise
        # From here the commit queue owns the staged bytes (and discards them on failure).
        await self._commits.commit(VerifiedBlob(descriptor.digest, size, (staging,)))
        self.stats.blobs_fetched += 1

    async def _discard(self, blob: VerifiedBlob) -> None:
        for source in blob.sources:
            await self.registry.blobs.storage.delete_prefix(source.rsplit("/", 1)[0])

    async def close(self) -> None:
        """Stop downloads no tag waits for, then wait for blob commits still running.

        Call once the copy is over (or cancelled).
        """
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._commits.close()

    async def _download(self, descriptor: Descriptor, staging: str) -> int:
        """Stream the blob into ``staging``, verified; the caller deletes it on failure."""
        hasher = hashlib.new(descriptor.digest.algorithm)
        size = await self.registry.blobs.storage.write(
            staging, self._counted(self.upstream.stream_blob(str(descriptor.digest))), hasher.update
        )
        if hasher.hexdigest() != descriptor.digest.hex or size != descriptor.size:
            raise e.DigestMismatch(
                f"blob {descriptor.digest} from upstream does not match its digest or size"
            )
        return size

    async def _counted(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Pass ``chunks`` through, adding their sizes to the live byte counter."""
        async for chunk in chunks:
            self.stats.bytes_copied += len(chunk)
            yield chunk


async def _gather(coros: list[Any]) -> list[Any]:
    """Run concurrently; on the first failure cancel the rest and re-raise that failure."""
    if not coros:
        return []
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        if task.cancelled():  # what it waited for was cancelled: never go on as if present
            raise asyncio.CancelledError
        failure = task.exception()
        if failure is not None:
            raise failure
    return [task.result() for task in tasks]
