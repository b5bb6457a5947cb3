"""Garbage collection deletes only what nothing references, and stale uploads."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from moorage.db.models import Blob, Manifest, Upload
from moorage.oci.digest import Digest
from moorage.services.gc import GarbageCollector
from moorage.storage import paths
from tests.support.images import OCI_INDEX, make_image, make_index, push_image, sha256

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
