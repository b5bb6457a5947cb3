"""ASGI app factories for ``--experimental-server`` runs (see bench/servers.py).

Each does what ``moorage serve`` does before starting uvicorn (load settings from
$MOORAGE_CONFIG, migrate the database), optionally with an experimental patch applied, so
that a proposed change can be measured before anyone edits Moorage itself.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from moorage.app import create_app
from moorage.config import load_settings
from moorage.db.engine import Database
from moorage.db.migrate import upgrade_sync
from moorage.services.repositories import RepoRef, RepositoryService


def app() -> Any:
    """Moorage's app, unchanged (for running it under another ASGI server)."""
    settings = load_settings(Path(os.environ["MOORAGE_CONFIG"]))
    # uvicorn calls factories inside its running event loop, where asyncio.run() is refused.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(upgrade_sync, settings.database_url).result()
    return create_app(settings)


def _patch_repo_cache() -> None:
    """An in-process cache of repository name -> RepoRef.

    Every /v2/ request first looks its repository up in its own read transaction; this
    experiment measures what saving that transaction would bring. (A real change must
    invalidate entries when a repository is deleted or changes state/visibility.)
    """
    original = RepositoryService.find
    cache: dict[str, RepoRef] = {}

    async def find(self: RepositoryService, full_name: str) -> RepoRef | None:
        hit = cache.get(full_name)
        if hit is not None:
            return hit
        found = await original(self, full_name)
        if found is not None:
            cache[full_name] = found
        return found

    RepositoryService.find = find  # type: ignore[method-assign]


def _patch_sqlite_write_lock() -> None:
    """SQLite write transactions serialised by an asyncio.Lock.

    Concurrent writers otherwise meet in SQLite's lock, whose busy handler polls with sleeps
    of 1..100 ms; waiting on an in-process lock wakes the next writer as soon as it is free.
    """
    original = Database.transaction
    lock = asyncio.Lock()

    @asynccontextmanager
    async def transaction(self: Database, *, readonly: bool = False) -> AsyncIterator[AsyncSession]:
        if readonly or not self.is_sqlite:
            async with original(self, readonly=readonly) as session:
                yield session
            return
        async with lock, original(self) as session:
            yield session

    Database.transaction = transaction  # type: ignore[method-assign]


def repo_cache_app() -> Any:
    _patch_repo_cache()
    return app()


def sqlite_write_lock_app() -> Any:
    _patch_sqlite_write_lock()
    return app()


def switch_interval_app() -> Any:
    """Moorage's app with the GIL switch interval at 1 ms instead of 5 ms.

    Every storage and SQLite call hops to a worker thread and back; while the event loop
    runs Python code, a thread that wants the GIL waits up to the switch interval.
    """
    sys.setswitchinterval(0.001)
    return app()


def combined_app() -> Any:
    """repo-cache and switch-1ms together."""
    _patch_repo_cache()
    sys.setswitchinterval(0.001)
    return app()
