"""PostgreSQL LISTEN/NOTIFY: wake a process the moment another one commits something for it.

``notify`` queues a NOTIFY in the caller's transaction (PostgreSQL sends it at commit, so a
listener never wakes before the change is visible; nothing on SQLite, a single-node database).
``listen`` keeps a dedicated asyncpg connection LISTENing and calls back on every
notification; it reconnects after losing the connection, and calls back once after each
(re)connect, since a notification sent while nobody listened is gone. Pollers stay the safety
net: a missed wake-up only delays work until their next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from moorage.db.engine import Database

log = logging.getLogger(__name__)
_CHANNEL = re.compile(r"^[a-z_][a-z0-9_]{0,62}\Z")
PING_SECONDS = 30.0  # a connection that died silently is noticed this late at most
MAX_RETRY_SECONDS = 30.0


async def notify(session: AsyncSession, channel: str) -> None:
    """Queue a notification on ``channel`` for when ``session``'s transaction commits."""
    if session.get_bind().dialect.name != "postgresql":
        return
    if not _CHANNEL.match(channel):
        raise ValueError(f"bad channel name {channel!r}")
    await session.execute(text(f"NOTIFY {channel}"))


def _dsn(db: Database) -> str:
    return make_url(db.url).set(drivername="postgresql").render_as_string(hide_password=False)


async def listen(
    db: Database, channel: str, callback: Callable[[], None], stop: asyncio.Event
) -> None:
    """Call ``callback`` on each notification on ``channel`` until ``stop`` (PostgreSQL only)."""
    if db.is_sqlite:
        return
    if not _CHANNEL.match(channel):
        raise ValueError(f"bad channel name {channel!r}")
    retry = 1.0
    while not stop.is_set():
        try:
            connection = await asyncpg.connect(_dsn(db))
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            log.warning("cannot LISTEN on %s (%s); retrying in %.0fs", channel, exc, retry)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), retry)
            retry = min(retry * 2, MAX_RETRY_SECONDS)
            continue
        retry = 1.0
        try:
            await _serve(connection, channel, callback, stop)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("LISTEN on %s lost its connection (%s); reconnecting", channel, exc)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5)


async def _serve(
    connection: Any, channel: str, callback: Callable[[], None], stop: asyncio.Event
) -> None:
    lost = asyncio.Event()
    connection.add_termination_listener(lambda _connection: lost.set())
    await connection.add_listener(channel, lambda *_args: callback())
    log.debug("listening on %s", channel)
    callback()  # whatever was announced while nobody listened
    while not stop.is_set() and not lost.is_set():
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
        try:
            await asyncio.wait(waiters, timeout=PING_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        if not stop.is_set() and not lost.is_set():
            await asyncio.wait_for(connection.execute("SELECT 1"), PING_SECONDS)
