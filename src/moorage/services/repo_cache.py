"""A small per-process cache of repository name → RepoRef, for the registry's hot path.

Only identities are cached (id and name); permission decisions never read it (they query the
database every time), so a stale entry can at worst point at a repository deleted in the last
few seconds on another node. Deletions on this node forget the entry at once.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from moorage.services.repositories import RepoRef

TTL_SECONDS = 5.0
MAX_ENTRIES = 10_000


class RepoCache:
    def __init__(self, ttl: float = TTL_SECONDS) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, RepoRef]] = {}

    def get(self, full_name: str) -> RepoRef | None:
        entry = self._entries.get(full_name)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, ref: RepoRef) -> None:
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[ref.full_name] = (time.monotonic() + self.ttl, ref)

    def forget(self, full_name: str) -> None:
        self._entries.pop(full_name, None)
