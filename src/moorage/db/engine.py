"""Async engines and transactions for PostgreSQL and SQLite. Dialect differences live here only.

A unit of work is ``async with db.transaction() as session``: one transaction, committed when
the block ends, rolled back on error. Services never hold a transaction across streaming I/O.
On SQLite, writing transactions start with ``BEGIN IMMEDIATE`` so that concurrent writers wait
on the busy timeout instead of failing on lock upgrade; reads use a plain deferred ``BEGIN``.
SQLite admits one writer at a time, so inside one process write transactions also queue on an
asyncio lock: the next writer starts the moment the previous one commits, instead of sleeping
in SQLite's busy handler (which polls every 1..100 ms). The busy timeout still arbitrates
between processes.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BUSY_TIMEOUT_MS = 60_000
# Pooled SQLite connections stay open (an aiosqlite connection is a thread plus a file
# handle); overflow connections would be opened and closed around every transaction.
SQLITE_POOL_SIZE = 16


def async_url(uri: str) -> str:
    """Turn Quay-style DB_URI values into SQLAlchemy async URLs."""
    url = make_url(uri)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return str(url.set(drivername="sqlite+aiosqlite"))
    if backend in {"postgresql", "postgres"}:
        return url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise ValueError(f"unsupported database {backend!r}: use sqlite:// or postgresql://")


def _sqlite_engine(url: str, *, immediate: bool) -> AsyncEngine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        pool_size=SQLITE_POOL_SIZE,
        max_overflow=SQLITE_POOL_SIZE,
    )
    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


class Database:
    """Engines and session factories for one database."""

    def __init__(self, uri: str, *, pool_size: int = 10) -> None:
        self.url = async_url(uri)
        self.dialect = make_url(self.url).get_backend_name()
        if self.dialect == "sqlite":
            self.write_engine = _sqlite_engine(self.url, immediate=True)
            self.read_engine = _sqlite_engine(self.url, immediate=False)
        else:
            self.write_engine = create_async_engine(
                self.url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )
            self.read_engine = self.write_engine
        self._write = async_sessionmaker(self.write_engine, expire_on_commit=False)
        self._read = async_sessionmaker(self.read_engine, expire_on_commit=False)
        self._write_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def transaction(self, *, readonly: bool = False) -> AsyncIterator[AsyncSession]:
        """One unit of work: commit at the end of the block, roll back on any error."""
        factory = self._read if readonly else self._write
        async with self._writer_turn(readonly), factory() as session, session.begin():
            yield session

    def _writer_turn(self, readonly: bool) -> AbstractAsyncContextManager[object]:
        """SQLite writers of this process, one at a time (see the module docstring)."""
        if readonly or not self.is_sqlite:
            return nullcontext()
        loop = asyncio.get_running_loop()
        lock = self._write_locks.get(loop)
        if lock is None:
            lock = self._write_locks[loop] = asyncio.Lock()
        return lock

    async def dispose(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()


def insert_ignore(
    session: AsyncSession, table: Any, values: dict[str, Any] | list[dict[str, Any]]
) -> Any:
    """An INSERT of one row (a dict) or several (a list) that silently skips unique conflicts."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert  # noqa: PLC0415

        return pg_insert(table).values(values).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert  # noqa: PLC0415

    return sqlite_insert(table).values(values).on_conflict_do_nothing()


def insert_or_update(
    session: AsyncSession,
    table: Any,
    values: list[dict[str, Any]],
    keys: list[str],
    update: list[str],
) -> Any:
    """An INSERT of several rows that, for a row whose ``keys`` exist already, sets its
    ``update`` columns to the new values instead, on either dialect."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert  # noqa: PLC0415

        pg = pg_insert(table).values(values)
        return pg.on_conflict_do_update(
            index_elements=keys, set_={column: pg.excluded[column] for column in update}
        )
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert  # noqa: PLC0415

    lite = sqlite_insert(table).values(values)
    return lite.on_conflict_do_update(
        index_elements=keys, set_={column: lite.excluded[column] for column in update}
    )


def supports_row_locks(session: AsyncSession) -> bool:
    """SELECT ... FOR UPDATE [SKIP LOCKED] works here (PostgreSQL); SQLite locks the database."""
    return session.get_bind().dialect.name == "postgresql"
