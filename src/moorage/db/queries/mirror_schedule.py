"""The database as the mirror job queue: find due configs, claim, heartbeat, release, runs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from moorage.db.engine import supports_row_locks
from moorage.db.models import MirrorConfig, MirrorRun, Repository, RepositoryState, SyncStatus


class MirrorScheduleQueries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def due(
        self, now: dt.datetime, limit: int, exclude: Sequence[int] = ()
    ) -> Sequence[MirrorConfig]:
        """Quay's eligibility (§4.2), plus SYNCING rows whose lease expired (dead worker).

        A row still leased by a worker that is winding down a cancelled sync (cancel, then
        sync-now at once) waits until that worker lets go (or its lease expires), so that two
        syncs of one mirror never overlap. ``exclude``: configs this worker is still running.
        """
        immediate = MirrorConfig.sync_status == int(SyncStatus.SYNC_NOW)
        ready = and_(
            MirrorConfig.is_enabled.is_(True),
            MirrorConfig.sync_start_date <= now,
            MirrorConfig.sync_retries_remaining > 0,
            MirrorConfig.sync_status.not_in([int(SyncStatus.SYNCING), int(SyncStatus.CANCEL)]),
        )
        unleased = or_(MirrorConfig.lease_owner.is_(None), MirrorConfig.lease_expires_at < now)
        orphaned = and_(
            MirrorConfig.sync_status == int(SyncStatus.SYNCING),
            MirrorConfig.lease_expires_at < now,
        )
        stmt = (
            select(MirrorConfig)
            .join(Repository, Repository.id == MirrorConfig.repository_id)
            .where(Repository.state == int(RepositoryState.MIRROR))
            .where(or_(and_(or_(immediate, ready), unleased), orphaned))
            .order_by(MirrorConfig.sync_start_date)
            .limit(limit)
        )
        if exclude:
            stmt = stmt.where(MirrorConfig.id.not_in(list(exclude)))
        if supports_row_locks(self.session):
            stmt = stmt.with_for_update(skip_locked=True, of=MirrorConfig)
        return (await self.session.execute(stmt)).scalars().all()

    async def claim(
        self, config: MirrorConfig, owner: str, lease_until: dt.datetime, new_txn: str
    ) -> bool:
        """Optimistic claim: succeeds only if nobody changed the row since it was read."""
        result = await self.session.execute(
            update(MirrorConfig)
            .where(
                MirrorConfig.id == config.id,
                MirrorConfig.sync_transaction_id == config.sync_transaction_id,
            )
            .values(
                sync_status=int(SyncStatus.SYNCING),
                sync_expiration_date=lease_until,
                lease_owner=owner,
                lease_expires_at=lease_until,
                sync_transaction_id=new_txn,
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def heartbeat(self, config_id: int, owner: str, lease_until: dt.datetime) -> bool:
        """Renew our lease; False when the row is no longer ours and SYNCING (cancel, takeover)."""
        result = await self.session.execute(
            update(MirrorConfig)
            .where(
                MirrorConfig.id == config_id,
                MirrorConfig.lease_owner == owner,
                MirrorConfig.sync_status == int(SyncStatus.SYNCING),
            )
            .values(lease_expires_at=lease_until, sync_expiration_date=lease_until)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def get(self, config_id: int) -> MirrorConfig | None:
        return await self.session.get(MirrorConfig, config_id, populate_existing=True)

    async def release(
        self, config_id: int, owner: str, claimed_txn: str, values: dict[str, Any]
    ) -> bool:
        """Apply the outcome if we still hold the lease and nobody cancelled or re-queued the
        sync since our claim (config edits keep the transaction id, so they never block this).

        Otherwise (sync-cancel, possibly followed by sync-now) the API already set the row as
        the user wants it: only let go of the lease. False in that case.
        """
        free = {"lease_owner": None, "lease_expires_at": None, "sync_expiration_date": None}
        result = await self.session.execute(
            update(MirrorConfig)
            .where(
                MirrorConfig.id == config_id,
                MirrorConfig.lease_owner == owner,
                MirrorConfig.sync_transaction_id == claimed_txn,
            )
            .values(**free, **values)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            return True
        await self.session.execute(
            update(MirrorConfig)
            .where(MirrorConfig.id == config_id, MirrorConfig.lease_owner == owner)
            .values(**free)
        )
        return False

    async def add_run(self, run: MirrorRun) -> MirrorRun:
        self.session.add(run)
        await self.session.flush()
        return run

    async def update_run(self, run_id: int, values: dict[str, Any]) -> None:
        await self.session.execute(update(MirrorRun).where(MirrorRun.id == run_id).values(**values))

    async def abandon_runs(self, config_id: int, finished_at: dt.datetime) -> None:
        """Close runs of a config left 'running' by a worker that died."""
        await self.session.execute(
            update(MirrorRun)
            .where(MirrorRun.config_id == config_id, MirrorRun.finished_at.is_(None))
            .values(
                status="failed",
                finished_at=finished_at,
                error_kind="worker_lost",
                error_message="the worker running this sync stopped responding",
            )
        )
