"""The notification delivery loop: fan events out into deliveries, claim, POST, retry, record.

Runs beside the mirror worker (inside `moorage serve` by default, and in `moorage worker`).
Every step is a short transaction on the database queue, so a process may die at any moment
without losing an event: an event is either still in the outbox or already one delivery row per
notification; a delivery being attempted carries a lease that another process takes over once
it expires. Delivery is therefore at least once (a receiver may see an event twice if a process
died between the receiver's answer and the commit); ``X-Moorage-Delivery`` identifies a delivery
across its attempts. One notification's deliveries are attempted in order, one at a time.

Each attempt POSTs the event data as JSON, with TLS verification, no redirects followed and no
proxy from the environment, bounded by NOTIFICATION_SEND_TIMEOUT. A non-2xx answer or a
network error is retried with exponential back-off up to NOTIFICATION_RETRY_ATTEMPTS attempts;
then the delivery is failed and the notification's ``number_of_failures`` grows by one (a
success resets it, as in Quay). Logs name the notification and the receiver's scheme, host and
port only: the rest of a webhook URL often is a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import ssl
import time
from dataclasses import dataclass

import httpx

from moorage import __version__
from moorage.config import Settings
from moorage.db.base import utcnow
from moorage.db.engine import Database
from moorage.db.models import DeliveryStatus, NotificationDelivery, RepositoryNotification
from moorage.db.queries.notifications import NotificationQueries
from moorage.errors import MoorageError
from moorage.mirror.pinned_dns import guard_connections
from moorage.mirror.ssrf import SsrfGuard
from moorage.observability.metrics import NotificationMetrics
from moorage.services import notification_events as ev
from moorage.services.notifications import (
    MAX_FAILURES,
    check_webhook_host,
    parse_webhook_url,
    redacted,
)

log = logging.getLogger(__name__)

BATCH = 16  # deliveries claimed (and attempted concurrently) per poll
EVENT_BATCH = 100  # outbox events fanned out per transaction
MAX_BACKOFF_SECONDS = 3600.0
LEASE_MARGIN_SECONDS = 30.0
PURGE_EVERY_SECONDS = 3600.0
KEEP_FINISHED = dt.timedelta(days=7)  # finished delivery rows are kept this long


class AttemptFailed(Exception):
    """One attempt did not reach a 2xx answer; the message is safe to log and store."""


@dataclass(frozen=True, slots=True)
class Claimed:
    delivery: NotificationDelivery
    notification: RepositoryNotification
    attempt: int  # 1 for the first attempt


def backoff(settings: Settings, attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1, 2, 4, ... x the base)."""
    delay: float = settings.NOTIFICATION_RETRY_BACKOFF_SECONDS * 2 ** max(attempt - 1, 0)
    return min(delay, MAX_BACKOFF_SECONDS)


def _ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    return context


class NotificationDeliverer:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        ssrf: SsrfGuard,
        owner: str,
        metrics: NotificationMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.db = db
        self.ssrf = ssrf
        self.owner = owner
        self.interval = settings.NOTIFICATION_POLL_SECONDS
        self.timeout = settings.NOTIFICATION_SEND_TIMEOUT
        self.lease = dt.timedelta(seconds=self.timeout + LEASE_MARGIN_SECONDS)
        self._wake = asyncio.Event()
        self._last_purge = 0.0

    def wake(self) -> None:
        """Poll now (e.g. right after a test delivery was queued in this process)."""
        self._wake.set()

    def client(self) -> httpx.AsyncClient:
        """Connections go only to addresses the SSRF guard vets as they open (DNS rebinding)."""
        transport = httpx.AsyncHTTPTransport(
            verify=_ssl_context(self.settings.NOTIFICATION_CA_BUNDLE)
        )
        guard_connections(transport, self.ssrf)
        return httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(self.timeout),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": f"Moorage/{__version__}"},
        )

    async def run(self, stop: asyncio.Event) -> None:
        try:
            http = self.client()
        except (OSError, ssl.SSLError):
            log.exception("notification delivery cannot start: NOTIFICATION_CA_BUNDLE unusable")
            return
        log.info("notification delivery %s started (poll every %ss)", self.owner, self.interval)
        async with http:
            while not stop.is_set():
                batch = asyncio.ensure_future(self._poll_until_idle(http))
                waiters = [batch, asyncio.ensure_future(stop.wait())]
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                if not batch.done():  # stopping: attempts under way give their lease back
                    batch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await batch
                waiters[1].cancel()
                if stop.is_set():
                    break
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

    async def _poll_until_idle(self, http: httpx.AsyncClient) -> None:
        try:
            while await self.poll_once(http) >= BATCH:
                pass
            await self._purge()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("notification delivery poll failed")

    async def poll_once(self, http: httpx.AsyncClient) -> int:
        """Fan out queued events, then attempt the due deliveries; return how many were due."""
        while await self.fan_out() >= EVENT_BATCH:
            pass
        claims = await self.claim(BATCH)
        if claims:
            await asyncio.gather(*(self._attempt(http, claim) for claim in claims))
        return len(claims)

    # --- fan-out -------------------------------------------------------------------------------
    async def fan_out(self) -> int:
        """Turn outbox events into one delivery per enabled, matching notification."""
        async with self.db.transaction(readonly=True) as session:
            if not await NotificationQueries(session).has_events():
                return 0  # the common case: no write transaction at all
        async with self.db.transaction() as session:
            queries = NotificationQueries(session)
            events = await queries.take_events(EVENT_BATCH)
            if not events:
                return 0
            now = utcnow()
            for event in events:
                payload = ev.repository_event_data(
                    self.settings, event.namespace, event.repository, dict(event.data or {})
                )
                targets = await queries.targets(
                    event.namespace, event.repository, event.event, MAX_FAILURES
                )
                for notification in targets:
                    await queries.add_delivery(
                        NotificationDelivery(
                            notification_id=notification.id,
                            event=event.event,
                            payload=payload,
                            next_attempt_at=now,
                            created_at=now,
                        )
                    )
            await queries.delete_events([event.id for event in events])
            return len(events)

    # --- claim -----------------------------------------------------------------------------------
    async def claim(self, limit: int) -> list[Claimed]:
        now = utcnow()
        async with self.db.transaction(readonly=True) as session:
            if not await NotificationQueries(session).has_due(now):
                return []
        claims: list[Claimed] = []
        async with self.db.transaction() as session:
            queries = NotificationQueries(session)
            for delivery in await queries.due(now, limit):
                seen = delivery.attempts
                if not await queries.claim(delivery.id, seen, self.owner, now, now + self.lease):
                    continue  # another process claimed it first
                notification = await queries.notification(delivery.notification_id)
                if notification is None:
                    continue  # deleted meanwhile: the delivery row went with it
                claims.append(Claimed(delivery, notification, seen + 1))
        return claims

    # --- one attempt -----------------------------------------------------------------------------
    async def _attempt(self, http: httpx.AsyncClient, claim: Claimed) -> None:
        delivery, notification = claim.delivery, claim.notification
        url = str((notification.config or {}).get("url", ""))
        target = redacted(url)
        if notification.number_of_failures >= MAX_FAILURES:
            await self._finish(claim, DeliveryStatus.DROPPED, "notification disabled")
            log.info(
                "notification %s is disabled after %d failures: %s delivery %d dropped",
                notification.uuid,
                notification.number_of_failures,
                delivery.event,
                delivery.id,
            )
            return
        if claim.attempt > self.settings.NOTIFICATION_RETRY_ATTEMPTS:
            # The last attempt's process died before recording it.
            await self._finish(claim, DeliveryStatus.FAILED, delivery.last_error or "interrupted")
            return
        try:
            await self._post(http, url, delivery)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._give_back(claim))
            raise
        except AttemptFailed as exc:
            await self._failed(claim, target, str(exc))
            return
        await self._finish(claim, DeliveryStatus.DELIVERED, None)
        log.info(
            "notification %s: %s%s delivered to %s (attempt %d)",
            notification.uuid,
            delivery.event,
            " (test)" if delivery.is_test else "",
            target,
            claim.attempt,
        )

    async def _post(
        self, http: httpx.AsyncClient, url: str, delivery: NotificationDelivery
    ) -> None:
        """One attempt, bounded by NOTIFICATION_SEND_TIMEOUT as a whole (DNS included)."""
        body = json.dumps(delivery.payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Moorage-Event": delivery.event,
            "X-Moorage-Delivery": str(delivery.id),
        }
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                parts = parse_webhook_url(url)
                await check_webhook_host(self.ssrf, parts)  # again: DNS answers change
                # Streamed and never read: a receiver's answer body cannot fill our memory.
                async with http.stream("POST", url, content=body, headers=headers) as response:
                    status = response.status_code
        except MoorageError as exc:
            raise AttemptFailed(exc.message) from None
        except TimeoutError:
            raise AttemptFailed(f"no answer within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            # The class only: httpx messages may quote the URL.
            raise AttemptFailed(exc.__class__.__name__) from None
        finally:
            if self.metrics is not None:
                self.metrics.attempt_duration.observe(time.monotonic() - started)
        if not 200 <= status < 300:
            raise AttemptFailed(f"HTTP {status}")
        log.debug("webhook answered %d in %.2fs", status, time.monotonic() - started)

    def _count(self, event: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.attempts.labels(event=event, outcome=outcome).inc()

    async def _failed(self, claim: Claimed, target: str, reason: str) -> None:
        notification, delivery = claim.notification, claim.delivery
        attempts = self.settings.NOTIFICATION_RETRY_ATTEMPTS
        if claim.attempt < attempts:
            self._count(delivery.event, "retry")
            delay = backoff(self.settings, claim.attempt)
            log.warning(
                "notification %s: %s delivery %d to %s failed (%s), attempt %d of %d; "
                "retrying in %.1fs",
                notification.uuid,
                delivery.event,
                delivery.id,
                target,
                reason,
                claim.attempt,
                attempts,
                delay,
            )
            async with self.db.transaction() as session:
                await NotificationQueries(session).finish(
                    delivery.id,
                    self.owner,
                    {
                        "next_attempt_at": utcnow() + dt.timedelta(seconds=delay),
                        "last_error": reason[:255],
                    },
                )
            return
        log.warning(
            "notification %s: %s delivery %d to %s failed (%s) after %d attempts; giving up",
            notification.uuid,
            delivery.event,
            delivery.id,
            target,
            reason,
            claim.attempt,
        )
        await self._finish(claim, DeliveryStatus.FAILED, reason)

    async def _finish(self, claim: Claimed, status: DeliveryStatus, reason: str | None) -> None:
        self._count(claim.delivery.event, status.value)
        async with self.db.transaction() as session:
            queries = NotificationQueries(session)
            finished = await queries.finish(
                claim.delivery.id,
                self.owner,
                {
                    "status": status.value,
                    "finished_at": utcnow(),
                    "last_error": reason[:255] if reason else None,
                },
            )
            if not finished:
                return  # our lease ran out and another process took the delivery over
            if status == DeliveryStatus.DELIVERED:
                if claim.notification.number_of_failures:
                    await queries.reset_failures(claim.notification.id)
            elif status == DeliveryStatus.FAILED:
                await queries.add_failure(claim.notification.id)

    async def _give_back(self, claim: Claimed) -> None:
        """Shutdown during an attempt: release the lease without using up the attempt."""
        async with self.db.transaction() as session:
            await NotificationQueries(session).finish(
                claim.delivery.id, self.owner, {"attempts": claim.attempt - 1}
            )

    async def _purge(self) -> None:
        if time.monotonic() - self._last_purge < PURGE_EVERY_SECONDS:
            return
        self._last_purge = time.monotonic()
        async with self.db.transaction() as session:
            purged = await NotificationQueries(session).purge_finished(utcnow() - KEEP_FINISHED)
        if purged:
            log.info("purged %d finished notification deliveries", purged)
