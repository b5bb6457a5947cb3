"""Alembic environment: runs migrations through the same async engine setup as the app."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from moorage.db import models  # noqa: F401  (registers every table on Base.metadata)
from moorage.db.base import Base
from moorage.db.engine import Database

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(uri: str) -> None:
    db = Database(uri)
    try:
        async with db.write_engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await db.dispose()


existing = config.attributes.get("connection")
if existing is not None:
    _run(existing)
else:
    asyncio.run(_run_async(config.get_main_option("sqlalchemy.url") or ""))
