"""Apply Alembic migrations programmatically (used by `moorage migrate`, `serve` and tests).

Several nodes may start at once on one database. On PostgreSQL the upgrade runs under a
session-level advisory lock (``MIGRATION_LOCK_KEY``): the first node migrates, the others wait,
then find the schema at head and do nothing. The lock is taken before Alembic reads its version
table and outlives any commit a migration makes; it is released at the end, or by PostgreSQL
when the connection drops. On SQLite the upgrade's transaction starts with ``BEGIN IMMEDIATE``
(db/engine.py), which already admits one migrating writer at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.db.engine import Database

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# Fixed key of the advisory lock serialising migrations: the bytes "moorage\0" as a bigint.
MIGRATION_LOCK_KEY = int.from_bytes(b"moorage\0", "big")


def alembic_config(uri: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if uri:
        cfg.set_main_option("sqlalchemy.url", uri.replace("%", "%%"))
    return cfg


async def upgrade(db: Database, revision: str = "head") -> None:
    """Upgrade the database behind ``db`` to ``revision``."""

    def _upgrade(connection: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    async with db.write_engine.connect() as connection:
        if db.is_sqlite:
            await connection.run_sync(_upgrade)
            await connection.commit()
            return
        await _lock(connection)
        try:
            await connection.run_sync(_upgrade)
            await connection.commit()
        finally:
            await _unlock(connection)


async def _lock(connection: AsyncConnection) -> None:
    key = {"key": MIGRATION_LOCK_KEY}
    got = (await connection.execute(text("SELECT pg_try_advisory_lock(:key)"), key)).scalar()
    if not got:
        log.info("waiting for another process to finish migrating the database")
        await connection.execute(text("SELECT pg_advisory_lock(:key)"), key)
    await connection.commit()


async def _unlock(connection: AsyncConnection) -> None:
    try:
        await connection.rollback()  # ends a transaction a failed migration left open
        await connection.execute(
            text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY}
        )
        await connection.commit()
    except Exception:
        # A broken connection: discard it rather than return it to the pool, so PostgreSQL
        # ends the session and with it the lock.
        log.warning("could not release the migration lock; closing the connection")
        with contextlib.suppress(Exception):
            await connection.invalidate()


def upgrade_sync(uri: str) -> None:
    async def _go() -> None:
        db = Database(uri)
        try:
            await upgrade(db)
        finally:
            await db.dispose()

    asyncio.run(_go())
