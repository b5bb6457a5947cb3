"""Queries behind /health/instance and /health/endtoend."""

from __future__ import annotations

from sqlalchemy import literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from moorage.db.models import Repository


class HealthQueries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def ping(self) -> None:
        """One round trip to the database server."""
        await self.session.execute(select(literal(1)))

    async def read_schema(self) -> None:
        """A read through the application schema (fails if migrations are missing)."""
        await self.session.execute(select(Repository.id).limit(1))
