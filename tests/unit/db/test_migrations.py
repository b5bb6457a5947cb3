"""The Alembic migration head creates exactly the schema the models describe, on both databases."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from moorage.db import models  # noqa: F401  (registers every table)
from moorage.db.base import Base
from moorage.db.engine import Database
from moorage.db.migrate import upgrade

pytestmark = pytest.mark.anyio


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_models_match_migration_head(database: Database) -> None:
    await upgrade(database)  # idempotent: already at head
    async with database.write_engine.connect() as connection:
        diff = await connection.run_sync(_diff)
    assert diff == [], f"models and migrations disagree on {database.dialect}: {diff}"


async def test_upgrade_from_empty_sqlite(tmp_path: Any) -> None:
    db = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        await upgrade(db)
        await upgrade(db)  # running twice is a no-op
        async with db.write_engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
    finally:
        await db.dispose()
