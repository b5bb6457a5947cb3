"""Staging garbage: what interrupted writes leave behind, found and removed safely.

Three kinds, used by `moorage gc` (removes them) and `moorage fsck` (reports, and removes them
with ``--repair``):

- ``stale_upload``: an upload session untouched for longer than the threshold, with its chunks
  under ``uploads/<id>/`` (a client gave up, or the node receiving it was killed);
- ``orphan_staging``: objects under ``uploads/<id>/`` whose session row is gone (a process died
  between deleting the row and deleting the chunks) or never existed (a mirror download staged in
  ``uploads/<nonce>/00000000-mirror`` whose commit never happened), the newest of them older
  than the threshold;
- ``pending_write``: the storage driver's own unfinished writes (filesystem ``_tmp/`` files, S3
  multipart uploads) with no activity for longer than the threshold.

Nothing younger than the threshold is touched: it may belong to a write still in flight. Blob
content (``blobs/``) is never staging: orphan blob bytes are handled by garbage collection.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from moorage.db.engine import Database
from moorage.db.queries.uploads import UploadQueries
from moorage.storage import paths
from moorage.storage.base import PendingWrite, StorageDriver

STALE_UPLOAD = "stale_upload"
ORPHAN_STAGING = "orphan_staging"
PENDING_WRITE = "pending_write"

_ID_BATCH = 500
_LONG_AGO = dt.datetime.min.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class StagingItem:
    kind: str  # STALE_UPLOAD, ORPHAN_STAGING or PENDING_WRITE
    subject: str  # the upload id, the ``uploads/<id>`` prefix, or the pending write's key
    size: int
    objects: int  # storage objects it holds (a pending write counts as one)
    last_activity: dt.datetime
    pending: PendingWrite | None = None


@dataclass
class StagingScan:
    items: list[StagingItem] = field(default_factory=list)
    in_flight: int = 0  # objects and writes younger than the threshold, left alone


@dataclass
class _Owner:
    objects: int = 0
    size: int = 0
    newest: dt.datetime = _LONG_AGO


async def find_staging_garbage(
    db: Database, storage: StorageDriver, before: dt.datetime
) -> StagingScan:
    """Every staging item whose last activity is older than ``before``."""
    scan = StagingScan()
    async with db.transaction(readonly=True) as session:
        stale = await UploadQueries(session).stale_sessions(before)
    stale_ids = {upload_id for upload_id, _, _ in stale}
    owners: dict[str, _Owner] = {}
    async for info in storage.scan(paths.UPLOADS):
        owner_id = paths.staging_id(info.key)
        if owner_id is None:
            continue
        owner = owners.setdefault(owner_id, _Owner())
        owner.objects += 1
        owner.size += info.size
        owner.newest = max(owner.newest, info.modified)
    for upload_id, size, updated_at in stale:
        objects = owners[upload_id].objects if upload_id in owners else 0
        scan.items.append(StagingItem(STALE_UPLOAD, upload_id, size, objects, updated_at))
    candidates = sorted(set(owners) - stale_ids)
    for low in range(0, len(candidates), _ID_BATCH):
        batch = candidates[low : low + _ID_BATCH]
        async with db.transaction(readonly=True) as session:
            live = await UploadQueries(session).existing_ids(batch)
        for owner_id in batch:
            owner = owners[owner_id]
            if owner_id in live:
                continue  # a live session's chunks: it is purged as a whole when stale
            if owner.newest < before:
                prefix = f"{paths.UPLOADS}/{owner_id}"
                scan.items.append(
                    StagingItem(ORPHAN_STAGING, prefix, owner.size, owner.objects, owner.newest)
                )
            else:
                scan.in_flight += owner.objects
    async for write in storage.pending_writes():
        if write.last_activity < before:
            scan.items.append(
                StagingItem(PENDING_WRITE, write.key, write.size, 1, write.last_activity, write)
            )
        else:
            scan.in_flight += 1
    return scan


async def remove_staging_item(
    db: Database, storage: StorageDriver, item: StagingItem, before: dt.datetime
) -> bool:
    """Remove one item found by ``find_staging_garbage``; False if it came back to life."""
    if item.kind == STALE_UPLOAD:
        async with db.transaction() as session:
            deleted = await UploadQueries(session).delete_if_stale(item.subject, before)
        if not deleted:
            return False  # a chunk arrived meanwhile (or someone else purged it)
        await storage.delete_prefix(paths.upload_prefix(item.subject))
        return True
    if item.kind == ORPHAN_STAGING:
        # Upload ids are fresh UUIDs and mirror staging nonces are never reused: no session
        # can claim this prefix any more.
        await storage.delete_prefix(paths.validate_key(item.subject))
        return True
    if item.kind == PENDING_WRITE and item.pending is not None:
        await storage.discard_pending(item.pending)
        return True
    raise ValueError(f"unknown staging item {item!r}")
