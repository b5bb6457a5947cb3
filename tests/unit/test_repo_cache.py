"""The repository identity cache: hits, expiry, forgetting."""

from __future__ import annotations

import time

from moorage.db.models import RepositoryState, Visibility
from moorage.services.repo_cache import RepoCache
from moorage.services.repositories import RepoRef

REF = RepoRef(7, "acme", "app", RepositoryState.NORMAL, Visibility.PRIVATE)


def test_hit_expiry_and_forget() -> None:
    cache = RepoCache(ttl=0.05)
    assert cache.get("acme/app") is None
    cache.put(REF)
    assert cache.get("acme/app") == REF
    cache.forget("acme/app")
    assert cache.get("acme/app") is None
    cache.put(REF)
    time.sleep(0.06)
    assert cache.get("acme/app") is None
