"""The mirror worker: poll → claim → sync with a concurrency limit, heartbeat, clean shutdown.

Runs inside `moorage serve` (default) or alone as `moorage worker`. Several workers may share
one database: claims are atomic, leases are renewed every few seconds, and a lease that stops
being renewed (a killed worker) makes the mirror eligible again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable

from moorage.db.listen import listen
from moorage.db.models import SyncStatus
from moorage.db.models.mirror import MIRRORS_DUE
from moorage.mirror import errors as e
from moorage.mirror.scheduler import Claim, Outcome, Scheduler
from moorage.mirror.sync import MirrorSync, Progress, SyncEnvironment
from moorage.observability.logs import bind_log_context
from moorage.observability.metrics import MirrorMetrics

log = logging.getLogger(__name__)
CANCEL_POLL_SECONDS = 1.0


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class MirrorWorker:
    def __init__(
        self,
        env: SyncEnvironment,
        metrics: MirrorMetrics,
        owner: str | None = None,
        heartbeat: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.env = env
        self.heartbeat = heartbeat
        self.metrics = metrics
        self.owner = owner or worker_id()
        settings = env.settings
        self.scheduler = Scheduler(env.db, self.owner, settings.REPO_MIRROR_LEASE_SECONDS)
        self.interval = settings.REPO_MIRROR_INTERVAL
        self.capacity = settings.REPO_MIRROR_MAX_CONCURRENT_SYNCS
        self.running: dict[int, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """Poll now (e.g. right after a sync-now on this node)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        log.info("mirror worker %s started (poll every %ss)", self.owner, self.interval)
        self.metrics.workers_active.set(1)
        # On PostgreSQL a sync-now committed by any process wakes this worker at once.
        listener = asyncio.create_task(listen(self.env.db, MIRRORS_DUE, self.wake, stop))
        try:
            while not stop.is_set():
                await self.poll_once()
                self._wake.clear()
                waiters = [
                    asyncio.ensure_future(stop.wait()),
                    asyncio.ensure_future(self._wake.wait()),
                ]
                await asyncio.wait(
                    waiters, timeout=self.interval, return_when=asyncio.FIRST_COMPLETED
                )
                for waiter in waiters:
                    waiter.cancel()
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            await self.shutdown()
            self.metrics.workers_active.set(0)

    async def poll_once(self) -> int:
        """Claim as many due mirrors as there are free slots; return how many started."""
        free = self.capacity - len(self.running)
        try:
            if self.heartbeat is not None:
                await self.heartbeat(self.owner)
            claims = await self.scheduler.claim_due(free, list(self.running))
        except Exception:
            log.exception("mirror worker could not claim mirrors")
            return 0
        for claim in claims:
            # The task copies the context: every log line of this sync names its mirror and run.
            with bind_log_context(mirror=f"{claim.namespace}/{claim.name}", run=claim.run_id):
                self.running[claim.config.id] = asyncio.create_task(self._supervise(claim))
        return len(claims)

    async def wait_idle(self) -> None:
        while self.running:
            await asyncio.gather(*self.running.values(), return_exceptions=True)

    async def shutdown(self) -> None:
        """Stop running syncs; their mirrors go back to SYNC_NOW for any worker to resume."""
        self._stopping = True
        for task in list(self.running.values()):
            task.cancel()
        await asyncio.gather(*self.running.values(), return_exceptions=True)

    async def _supervise(self, claim: Claim) -> None:
        progress = Progress()
        labels = (claim.namespace, claim.name)
        self.metrics.last_sync_status.labels(*labels, "").set(2)
        self.metrics.last_sync_timestamp.labels(*labels).set(time.time())
        started = time.monotonic()
        sync_task = asyncio.create_task(MirrorSync(self.env, claim, progress).run())
        watch = asyncio.create_task(self._watch(claim, sync_task, progress))
        outcome = await self._outcome(claim, sync_task)
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        try:
            await asyncio.shield(self._record(claim, outcome, progress, time.monotonic() - started))
        finally:
            self.running.pop(claim.config.id, None)

    async def _outcome(self, claim: Claim, sync_task: asyncio.Task[Outcome]) -> Outcome:
        try:
            return await sync_task
        except asyncio.CancelledError:
            if self._stopping:
                return Outcome(SyncStatus.FAIL, "interrupted", "worker shut down", interrupted=True)
            status = await self.scheduler.current_status(claim)
            # SYNC_NOW here means cancel and then sync-now: sync-now is refused while SYNCING.
            if status in {SyncStatus.CANCEL, SyncStatus.SYNC_NOW}:
                await MirrorSync(self.env, claim, Progress()).audit(
                    "repo_mirror_sync_failed",
                    verb="Cancelled",
                    message=f"'{claim.config.external_reference}' cancelled",
                )
                return Outcome(SyncStatus.CANCEL, "cancelled", "sync cancelled")
            return Outcome(SyncStatus.FAIL, "preempted", "the lease on this mirror was lost")
        except Exception as exc:
            log.exception("mirror sync of %s/%s crashed", claim.namespace, claim.name)
            return Outcome(SyncStatus.FAIL, "internal", f"internal error: {exc.__class__.__name__}")

    async def _watch(
        self, claim: Claim, sync_task: asyncio.Task[Outcome], progress: Progress
    ) -> None:
        """Renew the lease; stop the sync within a second of a cancel or a lost lease."""
        renew_every = max(self.env.settings.REPO_MIRROR_LEASE_SECONDS / 3, CANCEL_POLL_SECONDS)
        last_renew = 0.0
        written: dict[str, int] = {}
        while not sync_task.done():
            try:
                if time.monotonic() - last_renew >= renew_every:
                    if not await self.scheduler.heartbeat(claim):
                        sync_task.cancel()
                        return
                    last_renew = time.monotonic()
                elif await self.scheduler.current_status(claim) != SyncStatus.SYNCING:
                    sync_task.cancel()
                    return
                values = progress.as_values()
                if values != written:  # live progress for the API and UI, at most once a second
                    await self.scheduler.progress(claim, values)
                    written = values
                self.metrics.pending_tags.labels(claim.namespace, claim.name).set(
                    max(
                        progress.tags_total
                        - progress.tags_copied
                        - progress.tags_skipped
                        - progress.tags_failed,
                        0,
                    )
                )
            except Exception:
                log.exception("heartbeat of %s/%s failed", claim.namespace, claim.name)
            await asyncio.sleep(CANCEL_POLL_SECONDS)

    async def _record(
        self, claim: Claim, outcome: Outcome, progress: Progress, seconds: float
    ) -> None:
        await self.scheduler.release(claim, outcome, dict(progress.as_values()))
        labels = (claim.namespace, claim.name)
        ok = outcome.status == SyncStatus.SUCCESS
        self.metrics.last_sync_status.labels(*labels, "").set(1 if ok else 0)
        self.metrics.sync_complete.labels(*labels).set(1 if ok and not progress.tags_failed else 0)
        self.metrics.pending_tags.labels(*labels).set(0)
        self.metrics.sync_duration.labels(claim.namespace).observe(seconds)
        self.metrics.bytes_copied.labels(claim.namespace).inc(progress.bytes_copied)
        if outcome.status == SyncStatus.FAIL and not outcome.interrupted:
            reason = _reason(outcome.error_kind)
            self.metrics.last_sync_status.labels(*labels, reason).set(0)
            self.metrics.sync_failures.labels(claim.namespace, reason).inc()
        log.info(
            "mirror %s/%s: %s (%s) in %.1fs",
            claim.namespace,
            claim.name,
            outcome.status.name,
            outcome.error_kind or "ok",
            seconds,
        )


def _reason(kind: str | None) -> str:
    for cls in (
        e.SourceNotAllowed,
        e.CredentialsUnreadable,
        e.UpstreamAuthError,
        e.UpstreamNotFound,
        e.UpstreamTimeout,
        e.UpstreamConnectionError,
        e.UpstreamTLSError,
    ):
        if cls.kind == kind:
            return cls.reason
    return "preempted" if kind == "preempted" else "unknown_error"
