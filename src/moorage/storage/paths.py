"""The single owner of the storage key layout.

    blobs/<algorithm>/<first two hex chars>/<hex>     blob content, content-addressed
    uploads/<upload id>/<index, 8 digits>-<nonce>     one object per received upload chunk
    _tmp/<random>                                     in-flight writes (filesystem driver)
    _health/<random>                                  health-check probes (deleted at once)

Keys never contain ``..``, empty segments or anything outside ``[A-Za-z0-9._-]`` per segment.
"""

from __future__ import annotations

import re

from moorage.errors import DigestInvalid, StorageKeyInvalid
from moorage.oci.digest import Digest

_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*\Z")
_UPLOAD_ID = re.compile(r"^[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}\Z")

BLOBS = "blobs"
UPLOADS = "uploads"
HEALTH = "_health"


def validate_key(key: str) -> str:
    """Refuse keys that could escape the storage root or alias another key."""
    parts = key.split("/")
    if not key or any(not _SEGMENT.match(p) or p in {".", ".."} for p in parts):
        raise StorageKeyInvalid(f"invalid storage key {key!r}")
    return key


def blob_key(digest: Digest) -> str:
    return f"{BLOBS}/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"


def blob_digest(key: str) -> Digest | None:
    """The digest whose content ``key`` holds, or None if ``key`` is not a blob key."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] != BLOBS:
        return None
    try:
        digest = Digest.parse(f"{parts[1]}:{parts[3]}")
    except DigestInvalid:
        return None
    return digest if blob_key(digest) == key else None


def staging_id(key: str) -> str | None:
    """The upload session id (or mirror staging nonce) owning an ``uploads/`` key, else None."""
    parts = key.split("/")
    if len(parts) < 3 or parts[0] != UPLOADS:
        return None
    return parts[1]


def is_upload_id(upload_id: str) -> bool:
    return bool(_UPLOAD_ID.match(upload_id))


def upload_prefix(upload_id: str) -> str:
    if not is_upload_id(upload_id):
        raise StorageKeyInvalid(f"invalid upload id {upload_id!r}")
    return f"{UPLOADS}/{upload_id}"


def upload_chunk_key(upload_id: str, index: int, nonce: str) -> str:
    """Chunk keys carry a nonce so two racing appends never overwrite each other's bytes."""
    return validate_key(f"{upload_prefix(upload_id)}/{index:08d}-{nonce}")


def staging_key(nonce: str) -> str:
    """Where the mirror engine streams a blob before its digest is verified."""
    return validate_key(f"{UPLOADS}/{nonce}/00000000-mirror")


def health_key(nonce: str) -> str:
    """A short-lived object written, read back and deleted by the health checks."""
    return validate_key(f"{HEALTH}/{nonce}")
