"""Queries behind the mirror health endpoints."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from moorage.db.engine import insert_ignore
from moorage.db.models import (
    MirrorConfig,
    MirrorRun,
    MirrorWorkerBeat,
    Repository,
    RepositoryState,
)


class MirrorHealthQueries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def beat(self, worker_id: str, now: dt.datetime) -> None:
        existing = await self.session.get(MirrorWorkerBeat, worker_id)
        if existing is None:
            await self.session.execute(
                insert_ignore(
                    self.session,
                    MirrorWorkerBeat.__table__,
                    {"worker_id": worker_id, "last_seen": now},
                )
            )
        else:
            existing.last_seen = now

    async def active_workers(self, since: dt.datetime) -> int:
        stmt = (
            select(func.count())
            .select_from(MirrorWorkerBeat)
            .where(MirrorWorkerBeat.last_seen >= since)
        )
        return int((await self.session.execute(stmt)).scalar_one())

    async def mirrors(
        self, namespace: str | None
    ) -> Sequence[tuple[MirrorConfig, Repository, dt.datetime | None]]:
        """Enabled mirrors of MIRROR repositories, with the end of their last finished run."""
        last_end = (
            select(func.max(MirrorRun.finished_at))
            .where(MirrorRun.config_id == MirrorConfig.id)
            .scalar_subquery()
        )
        stmt = (
            select(MirrorConfig, Repository, last_end)
            .join(Repository, Repository.id == MirrorConfig.repository_id)
            .where(
                MirrorConfig.is_enabled.is_(True),
                Repository.state == int(RepositoryState.MIRROR),
            )
            .order_by(Repository.namespace, Repository.name)
        )
        if namespace is not None:
            stmt = stmt.where(Repository.namespace == namespace)
        return [(r[0], r[1], r[2]) for r in (await self.session.execute(stmt)).all()]

    async def pending_tags(self) -> int:
        stmt = select(
            func.coalesce(
                func.sum(
                    MirrorRun.tags_total
                    - MirrorRun.tags_copied
                    - MirrorRun.tags_skipped
                    - MirrorRun.tags_failed
                ),
                0,
            )
        ).where(MirrorRun.finished_at.is_(None))
        return max(int((await self.session.execute(stmt)).scalar_one()), 0)
