"""Reads and writes of the shared failed-login counters (services/login_throttle.py)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, delete, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from moorage.db.engine import insert_ignore, insert_or_update, supports_row_locks
from moorage.db.models import LoginFailureCounter, LoginTrustedPair

Key = tuple[str, str]  # ("user" | "ip", value)


class LoginThrottleQueries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def counters(
        self, keys: Sequence[Key], *, lock: bool = False
    ) -> list[LoginFailureCounter]:
        if not keys:
            return []
        stmt = select(LoginFailureCounter).where(
            tuple_(LoginFailureCounter.kind, LoginFailureCounter.key).in_(list(keys))
        )
        if lock and supports_row_locks(self.session):
            stmt = stmt.with_for_update()
        return list((await self.session.scalars(stmt)).all())

    async def ensure_counters(self, keys: Sequence[Key]) -> None:
        """Create absent counters (zero), so that they can be locked and updated."""
        rows = [
            {"kind": kind, "key": key, "failures": 0, "blocked_until": 0.0, "last_failure": 0.0}
            for kind, key in keys
        ]
        if rows:
            await self.session.execute(insert_ignore(self.session, LoginFailureCounter, rows))

    async def delete_counter(self, key: Key) -> None:
        kind, value = key
        await self.session.execute(
            delete(LoginFailureCounter).where(
                LoginFailureCounter.kind == kind, LoginFailureCounter.key == value
            )
        )

    async def trusted_since(self, username: str, address: str) -> float | None:
        since = await self.session.scalar(
            select(LoginTrustedPair.since).where(
                LoginTrustedPair.username == username, LoginTrustedPair.address == address
            )
        )
        return None if since is None else float(since)

    async def trust(self, username: str, address: str, now: float) -> None:
        values = [{"username": username, "address": address, "since": now}]
        await self.session.execute(
            insert_or_update(
                self.session, LoginTrustedPair, values, ["username", "address"], ["since"]
            )
        )

    async def purge(self, now: float, window: float) -> None:
        """Forget counters whose streak and wait are over, and trust that expired."""
        await self.session.execute(
            delete(LoginFailureCounter).where(
                or_(
                    LoginFailureCounter.failures == 0,
                    and_(
                        LoginFailureCounter.last_failure < now - window,
                        LoginFailureCounter.blocked_until < now,
                    ),
                )
            )
        )
        await self.session.execute(
            delete(LoginTrustedPair).where(LoginTrustedPair.since < now - window)
        )
