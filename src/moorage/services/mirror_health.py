"""Mirror health (Quay's /repository/mirror/health and /superuser/mirror/health bodies)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from moorage.db.base import utcnow
from moorage.db.engine import Database
from moorage.db.models import SyncStatus
from moorage.db.queries.mirror_health import MirrorHealthQueries
from moorage.services.mirror_rules import format_date

WORKER_FRESHNESS = dt.timedelta(seconds=90)
STALE_AFTER = dt.timedelta(hours=24)
ISSUE_CAP = 5


class MirrorHealthService:
    def __init__(self, db: Database, configured_workers: int | None) -> None:
        self.db = db
        self.configured_workers = configured_workers

    async def beat(self, worker_id: str) -> None:
        async with self.db.transaction() as session:
            await MirrorHealthQueries(session).beat(worker_id, utcnow())

    async def report(
        self, namespace: str | None, *, detailed: bool, limit: int, offset: int, identify: bool
    ) -> dict[str, Any]:
        now = utcnow()
        async with self.db.transaction(readonly=True) as session:
            queries = MirrorHealthQueries(session)
            rows = await queries.mirrors(namespace)
            active = await queries.active_workers(now - WORKER_FRESHNESS)
            pending = await queries.pending_tags()
        counts = {"total": len(rows), "syncing": 0, "completed": 0, "failed": 0, "never_run": 0}
        issues: dict[str, list[str]] = {"stale": [], "never": [], "exhausted": []}
        for config, repo, last_end in rows:
            status = SyncStatus(config.sync_status)
            name = f"{repo.namespace}/{repo.name}"
            if status in {SyncStatus.SYNCING, SyncStatus.SYNC_NOW}:
                counts["syncing"] += 1
            elif status == SyncStatus.SUCCESS:
                counts["completed"] += 1
            elif status == SyncStatus.FAIL:
                counts["failed"] += 1
            elif status == SyncStatus.NEVER_RUN:
                counts["never_run"] += 1
                issues["never"].append(f"Repository {name} has never been synced")
            if last_end is not None and now - last_end > STALE_AFTER:
                issues["stale"].append(f"Repository {name} hasn't synced in over 24 hours")
            if status == SyncStatus.FAIL and config.sync_retries_remaining == 0:
                issues["exhausted"].append(f"Repository {name} has exhausted all retry attempts")
        ran = counts["total"] - counts["never_run"]
        failing = ran > 0 and counts["failed"] / ran > 0.2
        degraded = bool(
            self.configured_workers and rows and active >= 1 and active < self.configured_workers
        )
        body: dict[str, Any] = {
            "healthy": not failing and not degraded,
            "workers": {
                "active": active,
                "configured": self.configured_workers,
                "status": "degraded" if degraded else "healthy",
            },
            "repositories": dict(counts),
            "tags_pending": pending,
            "last_check": format_date(now),
            "issues": self._issues(issues, now, identify, failing, degraded),
        }
        if detailed and identify:
            page = rows[offset : offset + limit]
            body["repositories"]["details"] = [
                {
                    "namespace": repo.namespace,
                    "repository": repo.name,
                    "sync_status": SyncStatus(config.sync_status).name,
                    "is_enabled": config.is_enabled,
                    "last_sync": format_date(last_end),
                    "retries_remaining": config.sync_retries_remaining,
                }
                for config, repo, last_end in page
            ]
            body["repositories"]["pagination"] = {
                "limit": limit,
                "offset": offset,
                "has_more": offset + limit < len(rows),
            }
        return body

    def _issues(
        self,
        found: dict[str, list[str]],
        now: dt.datetime,
        identify: bool,
        failing: bool,
        degraded: bool,
    ) -> list[dict[str, str | None]]:
        stamp = format_date(now)
        out: list[dict[str, str | None]] = []
        severity = {"stale": "warning", "never": "warning", "exhausted": "error"}
        for key, messages in found.items():
            if identify:
                out += [
                    {"severity": severity[key], "message": m, "timestamp": stamp}
                    for m in messages[:ISSUE_CAP]
                ]
            elif messages:
                out.append(
                    {
                        "severity": severity[key],
                        "message": f"{len(messages)} repositories: {key}",
                        "timestamp": stamp,
                    }
                )
        if failing:
            out.append(
                {
                    "severity": "critical",
                    "message": "More than 20% of mirrors are failing",
                    "timestamp": stamp,
                }
            )
        if degraded:
            out.append(
                {
                    "severity": "warning",
                    "message": "Fewer mirror workers than configured",
                    "timestamp": stamp,
                }
            )
        return out
