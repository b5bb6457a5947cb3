"""Apply Alembic migrations programmatically (used by `moorage migrate`, `serve` and tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from moorage.db.engine import Database

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


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
        await connection.run_sync(_upgrade)
        await connection.commit()


def upgrade_sync(uri: str) -> None:
    async def _go() -> None:
        db = Database(uri)
        try:
            await upgrade(db)
        finally:
            await db.dispose()

    asyncio.run(_go())
