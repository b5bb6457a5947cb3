"""Put, get and delete manifests; referrers. A manifest is stored only when all it references is."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from moorage.db.engine import Database
from moorage.db.models import Manifest
from moorage.db.queries.blobs import BlobQueries
from moorage.db.queries.manifests import ManifestQueries
from moorage.db.queries.repositories import RepositoryQueries
from moorage.db.queries.tags import TagQueries
from moorage.errors import (
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestUnknown,
    PayloadTooLarge,
    RegistryError,
)
from moorage.oci.digest import Digest, is_digest
from moorage.oci.manifest import Descriptor, ParsedManifest, parse_manifest
from moorage.oci.reference import split_repository, validate_tag
from moorage.services.repositories import RepoRef


class ManifestInUse(RegistryError):
    """the manifest is referenced by an index in this repository"""

    code = "DENIED"


@dataclass(frozen=True, slots=True)
class StoredManifest:
    digest: str
    media_type: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class PutResult:
    digest: Digest
    subject: Digest | None
    created: bool


def now_ms() -> int:
    return int(time.time() * 1000)


class ManifestService:
    def __init__(self, db: Database, max_manifest_size: int) -> None:
        self.db = db
        self.max_manifest_size = max_manifest_size

    def parse(
        self, payload: bytes, content_type: str | None, algorithm: str = "sha256"
    ) -> ParsedManifest:
        if len(payload) > self.max_manifest_size:
            raise PayloadTooLarge(
                f"manifest is {len(payload)} bytes; the limit is {self.max_manifest_size}"
            )
        return parse_manifest(payload, content_type, algorithm)

    async def put(
        self,
        full_name: str,
        reference: str,
        payload: bytes,
        content_type: str | None,
        *,
        allow_missing_children: bool = False,
        also: Callable[[AsyncSession], None] | None = None,
    ) -> PutResult:
        """Store a manifest and (for a tag reference) move the tag, in one transaction.

        Pushed by digest, the manifest is stored under that digest and its algorithm; pushed by
        tag, under its sha256 digest. ``also`` adds rows that must commit with it (an audit
        entry) to the same transaction.
        """
        namespace, name = split_repository(full_name)
        wanted = Digest.parse(reference) if is_digest(reference) else None
        tag = validate_tag(reference) if wanted is None else None
        parsed = self.parse(payload, content_type, wanted.algorithm if wanted else "sha256")
        if wanted is not None and parsed.digest != wanted:
            raise DigestInvalid(f"manifest digest is {parsed.digest}, not {wanted}")
        try:
            created = await self._store(
                namespace, name, tag, parsed, payload, allow_missing_children, also
            )
        except IntegrityError:
            # A concurrent put stored the same manifest (or moved the same tag) between our
            # read and our insert (PostgreSQL, READ COMMITTED). Once more: its row is now seen.
            created = await self._store(
                namespace, name, tag, parsed, payload, allow_missing_children, also
            )
        return PutResult(parsed.digest, parsed.subject.digest if parsed.subject else None, created)

    async def _store(
        self,
        namespace: str,
        name: str,
        tag: str | None,
        parsed: ParsedManifest,
        payload: bytes,
        allow_missing_children: bool,
        also: Callable[[AsyncSession], None] | None,
    ) -> bool:
        """One transaction: insert the manifest if absent, move the tag. True if inserted."""
        async with self.db.transaction() as session:
            repo, _ = await RepositoryQueries(session).get_or_create(namespace, name)
            manifests = ManifestQueries(session)
            existing = await manifests.get(repo.id, str(parsed.digest))
            created = existing is None
            if existing is None:
                existing = await self._insert(
                    session, repo.id, parsed, payload, allow_missing_children
                )
            if tag is not None:
                await TagQueries(session).set(repo.id, tag, existing.id, now_ms())
            if also is not None:
                also(session)
        return created

    async def _insert(
        self,
        session: AsyncSession,
        repository_id: int,
        parsed: ParsedManifest,
        payload: bytes,
        allow_missing_children: bool,
    ) -> Manifest:
        blob_digests = [str(d.digest) for d in parsed.blobs]
        blob_ids = await BlobQueries(session).linked_digests(repository_id, blob_digests)
        missing = [d for d in parsed.blobs if str(d.digest) not in blob_ids]
        if missing:
            raise ManifestBlobUnknown(
                f"manifest references unknown blob {missing[0].digest}",
                detail={"digest": str(missing[0].digest)},
            )
        manifests = ManifestQueries(session)
        child_digests = [str(d.digest) for d in parsed.children]
        child_ids = await manifests.get_many(repository_id, child_digests)
        absent = [d for d in child_digests if d not in child_ids]
        if absent and not allow_missing_children:
            raise ManifestBlobUnknown(
                f"index references unknown manifest {absent[0]}", detail={"digest": absent[0]}
            )
        manifest = await manifests.insert(
            Manifest(
                repository_id=repository_id,
                digest=str(parsed.digest),
                media_type=parsed.media_type,
                size=parsed.size,
                payload=payload,
                artifact_type=parsed.artifact_type,
                subject_digest=str(parsed.subject.digest) if parsed.subject else None,
            )
        )
        if blob_ids:
            await manifests.add_blob_refs(manifest.id, set(blob_ids.values()))
        if child_digests:
            await manifests.add_children(
                manifest.id, {d: child_ids.get(d) for d in dict.fromkeys(child_digests)}
            )
        await manifests.attach_child(repository_id, manifest.digest, manifest.id)
        return manifest

    async def get(self, repo: RepoRef, reference: str) -> StoredManifest:
        async with self.db.transaction(readonly=True) as session:
            if is_digest(reference):
                digest = Digest.parse(reference)
                manifest = await ManifestQueries(session).get(repo.id, str(digest))
            else:
                validate_tag(reference)
                manifest = await TagQueries(session).alive_manifest(repo.id, reference)
        if manifest is None:
            raise ManifestUnknown(f"manifest {reference} not found in {repo.full_name}")
        return StoredManifest(manifest.digest, manifest.media_type, manifest.payload)

    async def delete(self, repo: RepoRef, reference: str) -> None:
        """Delete by digest (the manifest and its tags) or by tag (only the tag)."""
        async with self.db.transaction() as session:
            tags = TagQueries(session)
            if not is_digest(reference):
                validate_tag(reference)
                if not await tags.end(repo.id, reference, now_ms()):
                    raise ManifestUnknown(f"tag {reference} not found in {repo.full_name}")
                return
            manifests = ManifestQueries(session)
            manifest = await manifests.get(repo.id, str(Digest.parse(reference)))
            if manifest is None:
                raise ManifestUnknown(f"manifest {reference} not found in {repo.full_name}")
            parents = await manifests.parents_of(manifest.id)
            if parents:
                raise ManifestInUse(
                    f"manifest {reference} is part of index {parents[0]}; delete the index first"
                )
            await manifests.delete(manifest.id)

    async def referrers(
        self, repo: RepoRef, subject: Digest, artifact_type: str | None
    ) -> list[Descriptor]:
        async with self.db.transaction(readonly=True) as session:
            rows = await ManifestQueries(session).referrers(repo.id, str(subject), artifact_type)
        out = []
        for row in rows:
            parsed = parse_manifest(row.payload, row.media_type)
            out.append(
                Descriptor(
                    media_type=row.media_type,
                    digest=Digest.parse(row.digest),
                    size=row.size,
                    artifact_type=row.artifact_type,
                    annotations=parsed.annotations or None,
                )
            )
        return out

    async def tags(self, repo: RepoRef, last: str | None, limit: int | None) -> list[str]:
        async with self.db.transaction(readonly=True) as session:
            return await TagQueries(session).names(repo.id, last, limit)

    async def tag_page(
        self, repo: RepoRef, last: str | None, n: int | None
    ) -> tuple[list[str], bool]:
        """Up to ``n`` tags (all if None) after ``last`` in ASCII order, and whether more follow.

        ``n == 0`` is an empty page with nothing after it (OCI 1.1: no Link header).
        """
        if n == 0:
            return [], False
        names = await self.tags(repo, last, None if n is None else n + 1)
        if n is not None and len(names) > n:
            return names[:n], True
        return names, False
