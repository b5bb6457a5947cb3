"""Garbage collection deletes only what nothing references, and stale uploads."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from moorage.db.models import Blob, Manifest, Upload
from moorage.db.queries.blobs import BlobQueries
from moorage.oci.digest import Digest
from moorage.services.blobs import BlobService
from moorage.services.fsck import (
    BLOB_ROW_WITHOUT_BYTES,
    ORPHAN_BYTES,
    FsckOptions,
    FsckService,
    Severity,
)
from moorage.services.gc import GarbageCollector, delete_unowned_bytes
from moorage.storage import paths
from tests.support.images import OCI_INDEX, make_image, make_index, push_blob, push_image, sha256

pytestmark = pytest.mark.anyio


def collector(app: Any, grace: int = 0) -> GarbageCollector:
    return GarbageCollector(app.state.db, app.state.storage, app.state.services.uploads, grace)


async def age_everything(app: Any, hours: int = 2) -> None:
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)
    async with app.state.db.transaction() as session:
        await session.execute(update(Blob).values(created_at=old))
        await session.execute(update(Manifest).values(created_at=old))
        await session.execute(update(Upload).values(updated_at=old))
        from moorage.db.models import RepositoryBlob

        await session.execute(update(RepositoryBlob).values(linked_at=old))


async def test_gc_keeps_tagged_and_deletes_untagged(app: Any, client: httpx.AsyncClient) -> None:
    kept = make_image()
    dropped = make_image()
    await push_image(client, "acme/gc", kept, "keep")
    await push_image(client, "acme/gc", dropped, "drop")
    assert (await client.delete("/v2/acme/gc/manifests/drop")).status_code == 202
    await age_everything(app)

    report = await collector(app, grace=3600).run(upload_max_age=3600)
    assert report.manifests_deleted == 1
    kept_digests = {sha256(b) for b in kept.blobs}
    only_dropped = [b for b in dropped.blobs if sha256(b) not in kept_digests]
    assert only_dropped, "the two images must differ in at least one blob"
    assert report.blobs_deleted == len(only_dropped)

    for blob in kept.blobs:
        assert (await client.get(f"/v2/acme/gc/blobs/{sha256(blob)}")).content == blob
    assert (await client.get(f"/v2/acme/gc/manifests/{dropped.digest}")).status_code == 404
    storage = app.state.storage
    for blob in only_dropped:
        assert await storage.stat(paths.blob_key(Digest.parse(sha256(blob)))) is None


async def test_gc_respects_grace_period(app: Any, client: httpx.AsyncClient) -> None:
    image = make_image()
    await push_image(client, "acme/young", image, "v1")
    await client.delete("/v2/acme/young/manifests/v1")
    report = await collector(app, grace=3600).run(upload_max_age=3600)
    assert report.manifests_deleted == 0
    assert report.blobs_deleted == 0


async def test_gc_keeps_index_children_and_referrers(app: Any, client: httpx.AsyncClient) -> None:
    amd, arm = make_image(architecture="amd64"), make_image(architecture="arm64")
    await push_image(client, "acme/idx", amd, amd.digest)
    await push_image(client, "acme/idx", arm, arm.digest)
    index = make_index([(amd, "amd64"), (arm, "arm64")])
    put = await client.put(
        "/v2/acme/idx/manifests/latest", content=index, headers={"Content-Type": OCI_INDEX}
    )
    assert put.status_code == 201
    subject = {"mediaType": OCI_INDEX, "digest": sha256(index), "size": len(index)}
    sbom = make_image(subject=subject, artifact_type="application/spdx+json")
    await push_image(client, "acme/idx", sbom, sbom.digest)
    await age_everything(app)

    report = await collector(app, grace=60).run(upload_max_age=3600)
    assert report.manifests_deleted == 0
    for digest in (amd.digest, arm.digest, sbom.digest):
        assert (await client.head(f"/v2/acme/idx/manifests/{digest}")).status_code == 200


async def test_gc_purges_abandoned_uploads(app: Any, client: httpx.AsyncClient) -> None:
    start = await client.post("/v2/acme/up/blobs/uploads/")
    location = start.headers["Location"]
    await client.patch(location, content=b"partial data")
    await age_everything(app)
    report = await collector(app, grace=60).run(upload_max_age=3600)
    assert report.uploads_purged == 1
    assert (await client.get(location)).status_code == 404


# --- crash safety: rows before bytes, orphan bytes and staging garbage -----------------------


class CrashAfterDelete:
    """A storage driver that dies right after deleting a blob's bytes (as a kill -9 would,
    before the transaction around it commits)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)
        if key.startswith("blobs/"):
            raise RuntimeError("simulated crash after deleting blob bytes")


async def test_gc_interrupted_after_deleting_bytes_leaves_no_row_without_bytes(
    app: Any, client: httpx.AsyncClient
) -> None:
    kept, dropped = make_image(), make_image()
    await push_image(client, "acme/crash", kept, "keep")
    await push_image(client, "acme/crash", dropped, "drop")
    assert (await client.delete("/v2/acme/crash/manifests/drop")).status_code == 202
    await age_everything(app)
    db, storage = app.state.db, app.state.storage
    crashing = GarbageCollector(db, CrashAfterDelete(storage), app.state.services.uploads, 0)
    with pytest.raises(RuntimeError, match="simulated crash"):
        await crashing.run(upload_max_age=3600)

    report = await FsckService(db, storage).run(FsckOptions(staging_age=dt.timedelta(0)))
    kinds = report.kinds()
    assert BLOB_ROW_WITHOUT_BYTES not in kinds, report.findings
    assert report.of(Severity.CORRUPTION) == []
    assert set(kinds) <= {ORPHAN_BYTES}  # the bytes not deleted yet: harmless, collected next

    again = await collector(app).run(upload_max_age=3600)
    assert again.orphan_blobs_deleted == kinds.get(ORPHAN_BYTES, 0)
    final = await FsckService(db, storage).run(FsckOptions(staging_age=dt.timedelta(0)))
    assert final.findings == []
    for blob in kept.blobs:
        assert (await client.get(f"/v2/acme/crash/blobs/{sha256(blob)}")).content == blob


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_gc_collects_orphan_bytes_and_staging_garbage(
    app: Any, client: httpx.AsyncClient
) -> None:
    storage = app.state.storage
    image = make_image()
    await push_image(client, "acme/stage", image, "v1")
    orphan = os.urandom(2000)
    await storage.write(paths.blob_key(Digest.parse(sha256(orphan))), _once(orphan))
    nonce = str(uuid.uuid4())
    await storage.write(paths.staging_key(nonce), _once(b"staged"))
    inner = getattr(storage, "inner", storage)
    if hasattr(inner, "root"):
        (inner.root / "_tmp" / "abandoned").write_bytes(b"half")
    else:
        key = inner._key("uploads/abandoned/00000000-x")
        upload = inner.client.create_multipart_upload(Bucket=inner.bucket, Key=key)
        # A part: moto reports a fixed initiation date in 2010, parts carry the real time.
        inner.client.upload_part(
            Bucket=inner.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"x"
        )

    young = await collector(app).run(upload_max_age=3600)  # staging still young: kept
    assert (young.staging_deleted, young.pending_writes_discarded) == (0, 0)
    assert young.orphan_blobs_deleted == 1

    await asyncio.sleep(0.01)
    report = await collector(app).run(upload_max_age=0)
    assert (report.staging_deleted, report.pending_writes_discarded) == (1, 1)
    assert "1 staging prefixes, 1 unfinished writes" in report.summary()
    fsck = await FsckService(app.state.db, storage).run(FsckOptions(staging_age=dt.timedelta(0)))
    assert fsck.findings == []
    for blob in image.blobs:
        assert (await client.get(f"/v2/acme/stage/blobs/{sha256(blob)}")).content == blob


class SlowCompose:
    """Storage whose compose (inside a blob commit's transaction) waits a moment first."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.composing = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def stat(self, key: str) -> int | None:
        result: int | None = await self.inner.stat(key)
        if key.startswith("blobs/"):
            self.composing.set()
            await asyncio.sleep(0.5)
        return result

    async def compose(self, sources: list[str], dest: str) -> None:
        await self.inner.compose(sources, dest)


async def test_orphan_byte_deletion_waits_for_a_commit_of_the_same_digest(
    app: Any, client: httpx.AsyncClient
) -> None:
    """gc (or fsck --repair) claims a digest before deleting its bytes: a push committing the
    same digest at that moment either waits for the claim (then writes fresh bytes) or makes
    the claim fail (then the bytes stay)."""
    db, storage = app.state.db, app.state.storage
    data = os.urandom(3000)
    digest = Digest.parse(sha256(data))
    key = paths.blob_key(digest)
    # Bytes already in place without a row (as after an interrupted gc)...
    await storage.write(key, _once(data))
    # ...while a push of the same content commits: its row is created, then it sees the bytes.
    start = await client.post("/v2/acme/race/blobs/uploads/")
    assert (await client.patch(start.headers["Location"], content=data)).status_code == 202
    repo = await app.state.services.repositories.get("acme/race")
    slow = SlowCompose(storage)
    chunks = [k async for k in storage.list("uploads")]
    commit = asyncio.create_task(BlobService(db, slow).commit(repo, digest, len(data), chunks))
    await asyncio.wait_for(slow.composing.wait(), 10)
    deleted = await delete_unowned_bytes(db, storage, [digest])
    await commit
    assert deleted == []
    assert await storage.stat(key) == len(data)
    async with db.transaction(readonly=True) as session:
        assert await BlobQueries(session).existing([str(digest)]) == {str(digest)}


async def test_a_blob_pushed_again_is_spared_until_its_manifest_arrives(
    app: Any, client: httpx.AsyncClient
) -> None:
    """An old unreferenced blob, already linked into the repository, is pushed again: the push
    renews its link, so gc running before the manifest arrives keeps it."""
    image = make_image()
    for blob in image.blobs:
        await push_blob(client, "acme/again", blob)
    await age_everything(app)  # unreferenced, created and linked hours ago: collectable
    for blob in image.blobs:
        await push_blob(client, "acme/again", blob)  # the client pushes the image again

    report = await collector(app, grace=60).run(upload_max_age=3600)
    assert report.blobs_deleted == 0
    put = await client.put(
        "/v2/acme/again/manifests/v1",
        content=image.manifest,
        headers={"Content-Type": image.media_type},
    )
    assert put.status_code == 201, put.text
