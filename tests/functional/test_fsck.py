"""`moorage fsck`: each kind of damage is reported exactly, and --repair fixes what it may.

Damage is done behind Moorage's back (storage objects deleted or altered, rows deleted with
foreign keys off, garbage written straight into storage), on both backends.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select, text, update

from moorage.__main__ import main
from moorage.db.engine import Database
from moorage.db.models import Blob, Manifest, Upload
from moorage.oci.digest import Digest
from moorage.services.fsck import (
    BLOB_DIGEST_MISMATCH,
    BLOB_MISSING,
    BLOB_ROW_WITHOUT_BYTES,
    CORRUPT_TAG,
    ORPHAN_BYTES,
    REPAIRED,
    TAG_MANIFEST_MISSING,
    UNREFERENCED_BLOB_CORRUPT,
    UNREFERENCED_MANIFEST,
    FsckOptions,
    FsckReport,
    FsckService,
    Severity,
)
from moorage.services.staging import ORPHAN_STAGING, PENDING_WRITE, STALE_UPLOAD
from moorage.storage import paths
from moorage.storage.base import StorageDriver
from tests.support.images import OCI_INDEX, make_image, make_index, push_blob, push_image, sha256

pytestmark = pytest.mark.anyio

NOW = dt.timedelta(0)


async def fsck(app: Any, **options: Any) -> FsckReport:
    options.setdefault("staging_age", NOW)
    return await FsckService(app.state.db, app.state.storage).run(FsckOptions(**options))


def summary(report: FsckReport) -> dict[str, list[str]]:
    """kind -> subjects, for corruption and garbage (notices left out)."""
    found: dict[str, list[str]] = {}
    for finding in report.findings:
        if finding.severity is not Severity.NOTICE:
            found.setdefault(finding.kind, []).append(finding.subject)
    return found


def blob_key(digest: str) -> str:
    return paths.blob_key(Digest.parse(digest))


async def read_all(storage: StorageDriver, key: str) -> bytes:
    return b"".join([piece async for piece in storage.read(key)])


async def once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def delete_without_foreign_keys(db: Database, table: str, row_id: int) -> None:
    """Delete a row the way a broken restore or a manual edit would: no cascades."""
    if db.is_sqlite:
        path = db.url.split("///", 1)[1]

        def run() -> None:
            connection = sqlite3.connect(path, timeout=30, isolation_level=None)
            try:
                connection.execute("PRAGMA foreign_keys=OFF")
                connection.execute(f"DELETE FROM {table} WHERE id = ?", (row_id,))  # noqa: S608
            finally:
                connection.close()

        await asyncio.to_thread(run)
        return
    async with db.transaction() as session:
        await session.execute(text("SET LOCAL session_replication_role = replica"))
        await session.execute(text(f"DELETE FROM {table} WHERE id = :id"), {"id": row_id})  # noqa: S608


async def test_clean_registry(app: Any, client: httpx.AsyncClient) -> None:
    amd, arm = make_image(architecture="amd64"), make_image(architecture="arm64")
    await push_image(client, "acme/clean", amd, "amd")
    await push_image(client, "acme/clean", arm, arm.digest)
    index = make_index([(amd, "amd64"), (arm, "arm64")])
    put = await client.put(
        "/v2/acme/clean/manifests/multi", content=index, headers={"Content-Type": OCI_INDEX}
    )
    assert put.status_code == 201

    report = await fsck(app)
    assert report.ok, report.findings
    assert report.findings == []
    assert (report.repositories, report.tags, report.manifests) == (1, 2, 3)
    assert report.blobs == report.blobs_verified == 6  # one config each, two layers each
    assert report.bytes_verified == sum(len(b) for b in (*amd.blobs, *arm.blobs))
    assert report.storage_objects == 6
    quick = await fsck(app, verify_content=False)
    assert quick.ok
    assert (quick.bytes_verified, quick.blobs_verified) == (0, 6)


async def test_missing_blob_bytes_are_corruption(app: Any, client: httpx.AsyncClient) -> None:
    image = make_image()
    await push_image(client, "acme/lost", image, "v1")
    await push_image(client, "acme/lost", image, "v2")
    lost = sha256(image.layers[0])
    await app.state.storage.delete(blob_key(lost))

    report = await fsck(app, repair=True)
    assert summary(report) == {
        BLOB_MISSING: [lost],
        CORRUPT_TAG: ["acme/lost:v1", "acme/lost:v2"],
    }
    assert report.corrupt_tags == ["acme/lost:v1", "acme/lost:v2"]
    assert not report.ok
    (finding,) = report.of(Severity.CORRUPTION)[:1]
    assert "referenced by 1 manifest" in finding.detail
    assert finding.repair is None  # never "repaired": that would lose the reference
    assert (await client.head("/v2/acme/lost/manifests/v1")).status_code == 200


async def test_flipped_byte_is_found_by_hashing_only(app: Any, client: httpx.AsyncClient) -> None:
    image = make_image(layer_sizes=(300_000,))
    await push_image(client, "acme/flip", image, "v1")
    layer = sha256(image.layers[0])
    storage = app.state.storage
    data = bytearray(await read_all(storage, blob_key(layer)))
    data[123_456] ^= 0x01
    await storage.write(blob_key(layer), once(bytes(data)))

    report = await fsck(app)
    assert summary(report) == {BLOB_DIGEST_MISMATCH: [layer], CORRUPT_TAG: ["acme/flip:v1"]}
    assert "hashes to sha256:" in report.of(Severity.CORRUPTION)[0].detail
    assert (await fsck(app, verify_content=False)).ok  # same size: only hashing can tell


async def test_tag_whose_manifest_row_is_gone(app: Any, client: httpx.AsyncClient) -> None:
    image = make_image()
    await push_image(client, "acme/rows", image, "gone")
    await push_image(client, "acme/rows", make_image(), "kept")
    async with app.state.db.transaction(readonly=True) as session:
        manifest = (
            await session.execute(
                Manifest.__table__.select().where(Manifest.digest == image.digest)
            )
        ).one()
    await delete_without_foreign_keys(app.state.db, "manifests", manifest.id)

    report = await fsck(app)
    assert summary(report) == {TAG_MANIFEST_MISSING: ["acme/rows:gone"]}
    assert report.corrupt_tags == ["acme/rows:gone"]
    assert str(manifest.id) in report.findings[0].detail


async def test_garbage_is_reported_and_repaired(app: Any, client: httpx.AsyncClient) -> None:
    storage: StorageDriver = app.state.storage
    db: Database = app.state.db
    image = make_image()
    await push_image(client, "acme/junk", image, "v1")
    # An abandoned upload session with one chunk.
    start = await client.post("/v2/acme/junk/blobs/uploads/")
    assert (await client.patch(start.headers["Location"], content=b"partial")).status_code == 202
    session_id = start.headers["Docker-Upload-UUID"]
    async with db.transaction() as session:
        old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
        await session.execute(update(Upload).values(updated_at=old))
    # A mirror download whose commit never happened.
    nonce = str(uuid.uuid4())
    await storage.write(paths.staging_key(nonce), once(b"staged"))
    # Blob bytes without a row.
    orphan = os.urandom(1000)
    await storage.write(blob_key(sha256(orphan)), once(orphan))
    # An unfinished write of the storage driver itself.
    await start_pending_write(storage)
    # An unreferenced blob whose bytes are gone, and one whose bytes are wrong.
    gone = await push_blob(client, "acme/junk", os.urandom(500))
    await storage.delete(blob_key(gone))
    bent = await push_blob(client, "acme/junk", b"a" * 700)
    await storage.write(blob_key(bent), once(b"b" * 700))

    report = await fsck(app)
    found = summary(report)
    assert found.pop(STALE_UPLOAD) == [session_id]
    assert found.pop(ORPHAN_STAGING) == [f"uploads/{nonce}"]
    assert found.pop(ORPHAN_BYTES) == [blob_key(sha256(orphan))]
    assert found.pop(BLOB_ROW_WITHOUT_BYTES) == [gone]
    assert found.pop(UNREFERENCED_BLOB_CORRUPT) == [bent]
    assert list(found) == [PENDING_WRITE]
    assert len(found[PENDING_WRITE]) == 1
    assert report.of(Severity.CORRUPTION) == []
    assert not report.ok
    # Too young to be garbage with the default threshold: left alone, counted as in flight.
    young = await fsck(app, staging_age=dt.timedelta(hours=1))
    assert set(summary(young)) == {
        STALE_UPLOAD,
        ORPHAN_BYTES,
        BLOB_ROW_WITHOUT_BYTES,
        UNREFERENCED_BLOB_CORRUPT,
    }
    assert young.staging_in_flight == 2

    repaired = await fsck(app, repair=True)
    assert [f.repair for f in repaired.findings] == [REPAIRED] * 6
    assert repaired.ok
    after = await fsck(app)
    assert after.findings == []
    assert await storage.stat(blob_key(sha256(orphan))) is None
    assert await storage.stat(blob_key(bent)) is None
    for blob in image.blobs:  # referenced content untouched
        assert (await client.get(f"/v2/acme/junk/blobs/{sha256(blob)}")).content == blob
    async with db.transaction(readonly=True) as session:
        digests = set((await session.execute(select(Blob.digest))).scalars().all())
    assert digests == {sha256(b) for b in image.blobs}


async def start_pending_write(storage: StorageDriver) -> None:
    """Leave a write unfinished, as a process killed mid-write does."""
    inner = getattr(storage, "inner", storage)
    root = getattr(inner, "root", None)
    if root is not None:
        (Path(root) / "_tmp" / uuid.uuid4().hex).write_bytes(b"half a blob")
        return
    key = inner._key(f"uploads/{uuid.uuid4()}/00000000-x")

    def begin() -> None:
        created = inner.client.create_multipart_upload(Bucket=inner.bucket, Key=key)
        inner.client.upload_part(
            Bucket=inner.bucket,
            Key=key,
            UploadId=created["UploadId"],
            PartNumber=1,
            Body=b"half a blob",
        )

    await asyncio.to_thread(begin)


async def test_unreferenced_manifest_is_a_notice(app: Any, client: httpx.AsyncClient) -> None:
    image = make_image()
    await push_image(client, "acme/old", image, "v1")
    assert (await client.delete("/v2/acme/old/manifests/v1")).status_code == 202
    report = await fsck(app)
    assert report.ok
    assert [(f.kind, f.subject) for f in report.findings] == [
        (UNREFERENCED_MANIFEST, f"acme/old@{image.digest}")
    ]


async def test_repository_scope(app: Any, client: httpx.AsyncClient) -> None:
    broken, fine = make_image(), make_image()
    await push_image(client, "acme/broken", broken, "v1")
    await push_image(client, "acme/fine", fine, "v1")
    await app.state.storage.delete(blob_key(sha256(broken.layers[0])))
    orphan = os.urandom(100)
    await app.state.storage.write(blob_key(sha256(orphan)), once(orphan))

    only_fine = await fsck(app, repositories=["acme/fine"])
    assert only_fine.findings == []
    assert (only_fine.repositories, only_fine.blobs) == (1, len(fine.blobs))
    only_broken = await fsck(app, repositories=["acme/broken"])
    assert set(summary(only_broken)) == {BLOB_MISSING, CORRUPT_TAG}  # storage not scanned


def write_config(base_config: dict[str, Any], tmp_path: Path) -> Path:
    path = tmp_path / "fsck-config.yaml"
    values = {k: str(v) if isinstance(v, Path) else v for k, v in base_config.items()}
    path.write_text(yaml.safe_dump(values))
    return path


async def test_cli(
    app: Any, client: httpx.AsyncClient, base_config: dict[str, Any], tmp_path: Path
) -> None:
    config = write_config(base_config, tmp_path)
    image = make_image()
    await push_image(client, "acme/cli", image, "v1")
    orphan = os.urandom(100)
    await app.state.storage.write(blob_key(sha256(orphan)), once(orphan))

    def invoke(*args: str) -> Any:
        env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("MOORAGE_")}
        return CliRunner().invoke(main, ["fsck", "--config", str(config), *args], env=env)

    result = await anyio.to_thread.run_sync(invoke, "--json")
    assert result.exit_code == 1, result.output
    body = json.loads(result.stdout)
    assert body["ok"] is False
    assert body["summary"]["garbage"] == {ORPHAN_BYTES: 1}
    assert body["counts"]["tags"] == 1

    result = await anyio.to_thread.run_sync(invoke, "--repair", "--progress")
    assert result.exit_code == 0, result.output
    assert "-> repaired" in result.stdout
    assert "result: OK (after repair)" in result.stdout
    assert "verifying blobs" in result.stderr  # the progress bar

    result = await anyio.to_thread.run_sync(invoke, "--quick")
    assert result.exit_code == 0, result.output
    assert "content not hashed" in result.stdout

    await app.state.storage.delete(blob_key(sha256(image.config)))
    result = await anyio.to_thread.run_sync(invoke, "--repair")
    assert result.exit_code == 1
    assert "CORRUPTION" in result.stdout
    assert "acme/cli:v1" in result.stdout
