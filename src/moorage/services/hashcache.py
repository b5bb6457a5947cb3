"""In-process cache of running upload digests: an optimisation, never a source of truth.

When the next chunk of an upload reaches the same process, hashing continues where it left off.
When it reaches another node (or after a restart), the digest is recomputed from storage.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict


class UploadHashCache:
    def __init__(self, capacity: int = 4096) -> None:
        self._entries: OrderedDict[str, tuple[int, hashlib._Hash]] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def take(self, upload_id: str, offset: int) -> hashlib._Hash | None:
        """The sha256 state of the first ``offset`` bytes of the upload, if this process has it."""
        if offset == 0:
            return hashlib.sha256()
        with self._lock:
            entry = self._entries.pop(upload_id, None)
        if entry is None or entry[0] != offset:
            return None
        return entry[1]

    def put(self, upload_id: str, offset: int, hasher: hashlib._Hash) -> None:
        with self._lock:
            self._entries[upload_id] = (offset, hasher)
            self._entries.move_to_end(upload_id)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def peek(self, upload_id: str, offset: int) -> hashlib._Hash | None:
        with self._lock:
            entry = self._entries.get(upload_id)
        if entry is None or entry[0] != offset:
            return None
        return entry[1].copy()

    def forget(self, upload_id: str) -> None:
        with self._lock:
            self._entries.pop(upload_id, None)
