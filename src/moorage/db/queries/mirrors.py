"""Queries on mirror configurations and runs (API side; the scheduler has its own)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from moorage.db.models import Account, MirrorConfig, MirrorRun, Repository


class MirrorQueries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def for_repository(
        self, repository_id: int, *, lock: bool = False
    ) -> MirrorConfig | None:
        stmt = select(MirrorConfig).where(MirrorConfig.repository_id == repository_id)
        if lock and self.session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def add(self, config: MirrorConfig) -> MirrorConfig:
        self.session.add(config)
        await self.session.flush()
        return config

    async def robot_name(self, robot_id: int) -> str | None:
        account = await self.session.get(Account, robot_id)
        return account.username if account else None

    async def robot_for_repository(self, repository_id: int) -> str | None:
        stmt = (
            select(Account.username)
            .join(MirrorConfig, MirrorConfig.internal_robot_id == Account.id)
            .where(MirrorConfig.repository_id == repository_id)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def robot_in_use(self, robot_id: int) -> bool:
        stmt = select(exists().where(MirrorConfig.internal_robot_id == robot_id))
        return bool((await self.session.execute(stmt)).scalar())

    async def latest_run(self, config_id: int, *, finished: bool) -> MirrorRun | None:
        stmt = select(MirrorRun).where(MirrorRun.config_id == config_id)
        if finished:
            stmt = stmt.where(MirrorRun.finished_at.is_not(None))
        else:
            stmt = stmt.where(MirrorRun.finished_at.is_(None))
        stmt = stmt.order_by(MirrorRun.id.desc()).limit(1)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def runs(self, config_id: int, limit: int, before_id: int | None) -> Sequence[MirrorRun]:
        stmt = select(MirrorRun).where(MirrorRun.config_id == config_id)
        if before_id is not None:
            stmt = stmt.where(MirrorRun.id < before_id)
        return (
            (await self.session.execute(stmt.order_by(MirrorRun.id.desc()).limit(limit)))
            .scalars()
            .all()
        )

    async def all_with_repository(
        self, namespace: str | None
    ) -> Sequence[tuple[MirrorConfig, Repository]]:
        stmt = select(MirrorConfig, Repository).join(
            Repository, Repository.id == MirrorConfig.repository_id
        )
        if namespace is not None:
            stmt = stmt.where(Repository.namespace == namespace)
        rows = (
            await self.session.execute(stmt.order_by(Repository.namespace, Repository.name))
        ).all()
        return [(row[0], row[1]) for row in rows]
