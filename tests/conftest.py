"""Shared fixtures: every functional test runs on SQLite + filesystem and PostgreSQL + S3.

PostgreSQL is expected at 127.0.0.1:5432 (user postgres, trust auth) or at MOORAGE_TEST_PG_URI.
Under CI=true its absence is an error; elsewhere the PostgreSQL half is skipped with a message.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from moorage.app import create_app
from moorage.config import Settings, load_settings
from moorage.db.base import Base
from moorage.db.engine import Database
from moorage.db.migrate import upgrade

PG_ADMIN_URI = os.environ.get(
    "MOORAGE_TEST_PG_URI", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ["sqlite-fs", "postgres-s3"]


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def _pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """One PostgreSQL database per test session (per xdist worker), migrated once."""
    if not _pg_reachable():
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is required under CI=true but 127.0.0.1:5432 is unreachable")
        pytest.skip("PostgreSQL not reachable at 127.0.0.1:5432: PostgreSQL half skipped")
    name = f"moorage_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = PG_ADMIN_URI.rsplit("/", 1)[0]

    async def _admin(sql: str) -> None:
        db = Database(PG_ADMIN_URI)
        try:
            async with db.write_engine.connect() as raw:
                conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text(sql))
        finally:
            await db.dispose()

    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    uri = f"{admin}/{name}"

    async def _migrate() -> None:
        db = Database(uri)
        try:
            await upgrade(db)
        finally:
            await db.dispose()

    asyncio.run(_migrate())
    yield uri
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from tests.support.s3server import run_s3_server

    with run_s3_server() as endpoint:
        yield endpoint


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def base_config(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    """Config values for the chosen backend (fresh database content and storage per test)."""
    config: dict[str, Any] = {
        "DATA_DIR": tmp_path / "data",
        "INSECURE_OPEN_REGISTRY_NO_AUTH": True,
        "GC_GRACE_PERIOD_SECONDS": 0,
    }
    if backend == "postgres-s3":
        from tests.support.s3server import s3_storage_params

        config["DB_URI"] = request.getfixturevalue("pg_database")
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = f"test-{uuid.uuid4().hex[:12]}"
        config["DISTRIBUTED_STORAGE_CONFIG"] = {
            "s3": ["S3Storage", s3_storage_params(endpoint, bucket)]
        }
        config["DISTRIBUTED_STORAGE_PREFERENCE"] = ["s3"]
    yield config
    if backend == "postgres-s3":
        from tests.support.s3server import reset_s3_server

        reset_s3_server(request.getfixturevalue("s3_endpoint"))


@pytest.fixture
def settings(base_config: dict[str, Any]) -> Settings:
    return load_settings(None, **base_config)


async def _reset(db: Database) -> None:
    if db.is_sqlite:
        await upgrade(db)
        return
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with db.transaction() as session:
        await session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    db = Database(settings.database_url)
    await _reset(db)
    yield db
    await db.dispose()


@pytest.fixture
async def app(settings: Settings, database: Database) -> AsyncIterator[Any]:
    application = create_app(settings, database=database)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry.test") as c:
        yield c
