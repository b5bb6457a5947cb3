"""Several nodes starting at once on an empty PostgreSQL database: one migrates, the others
wait on the advisory lock and find the schema at head (db/migrate.py)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from moorage.db import migrate
from moorage.db.base import Base
from moorage.db.engine import Database
from tests.conftest import PG_ADMIN_URI, _pg_reachable

pytestmark = pytest.mark.anyio
NODES = 4


async def _admin(sql: str) -> None:
    db = Database(PG_ADMIN_URI)
    try:
        async with db.write_engine.connect() as raw:
            conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(sql))
    finally:
        await db.dispose()


@pytest.fixture
async def empty_pg() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database (dropped afterwards)."""
    if not _pg_reachable():
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is required under CI=true but 127.0.0.1:5432 is unreachable")
        pytest.skip("PostgreSQL not reachable at 127.0.0.1:5432")
    name = f"moorage_migrate_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_URI.rsplit('/', 1)[0]}/{name}"
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _upgrade_once(uri: str, start: asyncio.Event) -> None:
    db = Database(uri)  # one engine per "node"
    try:
        await start.wait()
        await migrate.upgrade(db)
    finally:
        await db.dispose()


async def _scalar(uri: str, sql: str, **params: object) -> object:
    db = Database(uri)
    try:
        async with db.transaction(readonly=True) as session:
            return (await session.execute(text(sql), params)).scalar()
    finally:
        await db.dispose()


async def test_concurrent_upgrades_on_a_fresh_database(empty_pg: str) -> None:
    start = asyncio.Event()
    nodes = [asyncio.create_task(_upgrade_once(empty_pg, start)) for _ in range(NODES)]
    await asyncio.sleep(0.2)  # every node has its engine and waits at the start line
    start.set()
    results = await asyncio.wait_for(asyncio.gather(*nodes, return_exceptions=True), 120)
    assert [r for r in results if isinstance(r, BaseException)] == []

    head = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
    assert await _scalar(empty_pg, "SELECT version_num FROM alembic_version") == head
    assert await _scalar(empty_pg, "SELECT count(*) FROM alembic_version") == 1
    for table in Base.metadata.sorted_tables:
        regclass = await _scalar(empty_pg, "SELECT to_regclass(:t)", t=f"public.{table.name}")
        assert regclass is not None, table.name
    # The lock was released: no session holds it any more, and one more upgrade is a no-op.
    held = await _scalar(
        empty_pg,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
        "AND ((classid::bigint << 32) | objid::bigint) = :key",
        key=migrate.MIGRATION_LOCK_KEY,
    )
    assert held == 0
    await asyncio.wait_for(_upgrade_once(empty_pg, start), 30)


async def test_a_waiting_node_proceeds_when_the_lock_is_released(empty_pg: str) -> None:
    """While another session holds the migration lock, upgrade waits; then it migrates."""
    holder = Database(empty_pg)
    try:
        async with holder.write_engine.connect() as connection:
            await connection.execute(
                text("SELECT pg_advisory_lock(:k)"), {"k": migrate.MIGRATION_LOCK_KEY}
            )
            await connection.commit()
            go = asyncio.Event()
            go.set()
            node = asyncio.create_task(_upgrade_once(empty_pg, go))
            await asyncio.sleep(1.0)
            assert not node.done(), "upgrade did not wait for the migration lock"
            assert await _scalar(empty_pg, "SELECT to_regclass('public.alembic_version')") is None
            await connection.execute(
                text("SELECT pg_advisory_unlock(:k)"), {"k": migrate.MIGRATION_LOCK_KEY}
            )
            await connection.commit()
            await asyncio.wait_for(node, 60)
    finally:
        await holder.dispose()
    head = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
    assert await _scalar(empty_pg, "SELECT version_num FROM alembic_version") == head
