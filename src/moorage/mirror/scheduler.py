"""Claim due mirrors with a lease, renew it, and release with Quay's status rules (§4.9)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from moorage.db.base import utcnow
from moorage.db.engine import Database
from moorage.db.models import MirrorConfig, MirrorRun, Repository, RunStatus, SyncStatus
from moorage.db.models.mirror import MAX_SYNC_RETRIES, new_txn
from moorage.db.queries.mirror_schedule import MirrorScheduleQueries
from moorage.services.mirror_rules import next_slot


@dataclass(frozen=True, slots=True)
class Claim:
    """A mirror this worker holds the lease on, with a snapshot of its configuration."""

    config: MirrorConfig
    namespace: str
    name: str
    owner: str
    run_id: int
    trigger: str


@dataclass(frozen=True, slots=True)
class Outcome:
    status: SyncStatus  # SUCCESS, FAIL or CANCEL
    error_kind: str | None = None
    error_message: str | None = None
    interrupted: bool = False  # worker shutdown: give the mirror back without using a retry


class Scheduler:
    def __init__(self, db: Database, owner: str, lease_seconds: int) -> None:
        self.db = db
        self.owner = owner
        self.lease = dt.timedelta(seconds=lease_seconds)

    async def claim_due(self, limit: int, running: Sequence[int] = ()) -> list[Claim]:
        """Claim up to ``limit`` due mirrors, never one of ``running`` (still syncing here)."""
        claims: list[Claim] = []
        if limit <= 0:
            return claims
        now = utcnow()
        async with self.db.transaction() as session:
            queries = MirrorScheduleQueries(session)
            candidates = await queries.due(now, limit, running)
            for config in candidates:
                previous = SyncStatus(config.sync_status)
                stale_lease = config.lease_owner is not None  # its worker died
                if not await queries.claim(config, self.owner, now + self.lease, new_txn()):
                    continue  # somebody else changed it first
                if previous == SyncStatus.SYNCING or stale_lease:
                    await queries.abandon_runs(config.id, now)
                repo = await session.get(Repository, config.repository_id)
                assert repo is not None
                trigger = {
                    SyncStatus.SYNC_NOW: "sync_now",
                    SyncStatus.SYNCING: "takeover",
                    SyncStatus.FAIL: "retry",
                }.get(previous, "schedule")
                run = await queries.add_run(
                    MirrorRun(
                        config_id=config.id,
                        status=RunStatus.RUNNING.value,
                        trigger=trigger,
                        worker=self.owner,
                        started_at=now,
                    )
                )
                fresh = await queries.get(config.id)
                assert fresh is not None
                claims.append(Claim(fresh, repo.namespace, repo.name, self.owner, run.id, trigger))
        return claims

    async def heartbeat(self, claim: Claim) -> bool:
        async with self.db.transaction() as session:
            return await MirrorScheduleQueries(session).heartbeat(
                claim.config.id, self.owner, utcnow() + self.lease
            )

    async def progress(self, claim: Claim, values: dict[str, int]) -> None:
        async with self.db.transaction() as session:
            await MirrorScheduleQueries(session).update_run(claim.run_id, values)

    async def current_status(self, claim: Claim) -> SyncStatus | None:
        async with self.db.transaction(readonly=True) as session:
            config = await MirrorScheduleQueries(session).get(claim.config.id)
            return SyncStatus(config.sync_status) if config else None

    async def release(self, claim: Claim, outcome: Outcome, run_values: dict[str, object]) -> bool:
        now = utcnow()
        async with self.db.transaction() as session:
            queries = MirrorScheduleQueries(session)
            current = await queries.get(claim.config.id)
            released = False
            if current is not None:
                values = self._release_values(current, outcome, now)
                released = await queries.release(
                    claim.config.id, self.owner, claim.config.sync_transaction_id, values
                )
            run_status = {
                SyncStatus.SUCCESS: RunStatus.SUCCEEDED,
                SyncStatus.CANCEL: RunStatus.CANCELLED,
            }.get(outcome.status, RunStatus.FAILED)
            await queries.update_run(
                claim.run_id,
                {
                    "status": run_status.value,
                    "finished_at": now,
                    "error_kind": outcome.error_kind,
                    "error_message": outcome.error_message,
                    **run_values,
                },
            )
            return released

    def _release_values(
        self, current: MirrorConfig, outcome: Outcome, now: dt.datetime
    ) -> dict[str, object]:
        txn = new_txn()
        if SyncStatus.CANCEL in (current.sync_status, outcome.status):
            # Cancelled through the API: stays idle until sync-now (Quay).
            return {
                "sync_status": int(SyncStatus.CANCEL),
                "sync_retries_remaining": 0,
                "sync_transaction_id": txn,
            }
        if outcome.interrupted:
            return {"sync_status": int(SyncStatus.SYNC_NOW), "sync_transaction_id": txn}
        start = current.sync_start_date or now
        if outcome.status == SyncStatus.SUCCESS:
            return {
                "sync_status": int(SyncStatus.SUCCESS),
                "sync_retries_remaining": MAX_SYNC_RETRIES,
                "sync_start_date": next_slot(start, current.sync_interval, now),
                "sync_transaction_id": txn,
            }
        remaining = current.sync_retries_remaining - 1
        if remaining >= 1:
            return {
                "sync_status": int(SyncStatus.FAIL),
                "sync_retries_remaining": remaining,
                "sync_transaction_id": txn,
            }
        return {
            "sync_status": int(SyncStatus.FAIL),
            "sync_retries_remaining": MAX_SYNC_RETRIES,
            "sync_start_date": next_slot(start, current.sync_interval, now),
            "sync_transaction_id": txn,
        }
