"""Repository notifications: Quay's create, list, get, delete, reset-failures and test.

Bodies have passed the API's JSON schema; this module applies the event, method and webhook
rules (including the SSRF policy on the webhook's host) and queues test deliveries. Delivery
itself is services.notification_delivery.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import SplitResult, urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from moorage.config import Settings
from moorage.db.base import utcnow
from moorage.db.engine import Database
from moorage.db.models import NotificationDelivery, Repository, RepositoryNotification
from moorage.db.queries.notifications import NotificationQueries
from moorage.db.queries.repositories import RepositoryQueries
from moorage.errors import InvalidRequest, NotFound
from moorage.mirror.ssrf import NOT_ALLOWED, SsrfGuard
from moorage.services import notification_events as ev
from moorage.services.audit import Actor, record

MAX_URL_LENGTH = 2048
MAX_EVENT_CONFIG_BYTES = 8192
MAX_TITLE_LENGTH = 255
# Quay's get_enabled_notification: a notification with this many failed deliveries is disabled
# until its failures are reset (POST .../notification/{uuid}).
MAX_FAILURES = 3
UUID_RE = re.compile(r"^[0-9a-fA-F-]{1,36}\Z")


def parse_webhook_url(value: Any) -> SplitResult:
    """The webhook URL, which must be an absolute http or https URL with a host."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest("Missing webhook URL")
    if len(value) > MAX_URL_LENGTH:
        raise InvalidRequest(f"Invalid webhook URL: longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise InvalidRequest("Invalid webhook URL: it contains spaces or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as exc:
        raise InvalidRequest("Invalid webhook URL") from exc
    if parts.scheme not in {"http", "https"}:
        raise InvalidRequest("Invalid webhook URL: only http:// and https:// URLs are accepted")
    if not parts.hostname:
        raise InvalidRequest("Invalid webhook URL: it has no host")
    return parts


def redacted(url: str) -> str:
    """``scheme://host[:port]`` of a URL: what logs may show (paths and queries carry tokens)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "(invalid URL)"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


async def check_webhook_host(ssrf: SsrfGuard, parts: SplitResult) -> None:
    """The SSRF policy of mirror sources (SSRF_ALLOWED_HOSTS), applied to the webhook's host."""
    assert parts.hostname is not None
    try:
        await ssrf.check_url_host(parts.hostname, parts.port)
    except InvalidRequest as exc:
        reason = "the host is not allowed" if exc.message == NOT_ALLOWED else exc.message
        raise InvalidRequest(f"Invalid webhook URL: {reason}") from exc


def notification_body(notification: RepositoryNotification) -> dict[str, Any]:
    """Quay's RepositoryNotification.to_dict()."""
    return {
        "id": notification.id,
        "uuid": notification.uuid,
        "title": notification.title,
        "event": notification.event,
        "method": notification.method,
        "config": dict(notification.config or {}),
        "event_config": dict(notification.event_config or {}),
        "number_of_failures": notification.number_of_failures,
    }


class NotificationService:
    def __init__(self, db: Database, settings: Settings, ssrf: SsrfGuard) -> None:
        self.db = db
        self.settings = settings
        self.ssrf = ssrf
        # Set by a delivery loop in this process so that a test delivery leaves at once.
        self.on_queued: Callable[[], None] | None = None

    async def _repo(self, session: AsyncSession, namespace: str, name: str) -> Repository:
        repo = await RepositoryQueries(session).get(namespace, name)
        if repo is None:
            raise NotFound("Not Found")
        return repo

    async def list(self, namespace: str, name: str) -> Sequence[RepositoryNotification]:
        async with self.db.transaction(readonly=True) as session:
            repo = await self._repo(session, namespace, name)
            return await NotificationQueries(session).for_repository(repo.id)

    async def get(self, namespace: str, name: str, uuid: str) -> RepositoryNotification:
        async with self.db.transaction(readonly=True) as session:
            repo = await self._repo(session, namespace, name)
            found = await _lookup(session, repo, uuid)
            if found is None:
                raise NotFound("Not Found")
            return found

    async def create(
        self, namespace: str, name: str, body: dict[str, Any], actor: Actor
    ) -> RepositoryNotification:
        event = body["event"]
        if event not in ev.EVENTS:
            supported = ", ".join(ev.EVENTS)
            raise InvalidRequest(f"Unsupported event '{event}': Moorage supports {supported}")
        method = body["method"]
        if method not in ev.METHODS:
            supported = ", ".join(ev.METHODS)
            raise InvalidRequest(f"Unsupported method '{method}': Moorage supports {supported}")
        config = body["config"]
        if config.get("template"):
            raise InvalidRequest("Webhook body templates are not supported")
        parts = parse_webhook_url(config.get("url"))
        title = body.get("title")
        if title is not None and len(title) > MAX_TITLE_LENGTH:
            raise InvalidRequest(f"title must be at most {MAX_TITLE_LENGTH} characters long")
        if title is not None and "\x00" in title:
            raise InvalidRequest("title must not contain NUL characters")
        if len(json.dumps(body["eventConfig"])) > MAX_EVENT_CONFIG_BYTES:
            raise InvalidRequest(f"eventConfig must be at most {MAX_EVENT_CONFIG_BYTES} bytes long")
        async with self.db.transaction(readonly=True) as session:
            await self._repo(session, namespace, name)  # 404 before the (slow) DNS lookup
        await check_webhook_host(self.ssrf, parts)
        async with self.db.transaction() as session:
            repo = await self._repo(session, namespace, name)
            notification = await NotificationQueries(session).add(
                RepositoryNotification(
                    repository_id=repo.id,
                    event=event,
                    method=method,
                    title=title,
                    config={"url": config["url"]},
                    event_config=dict(body["eventConfig"]),
                    number_of_failures=0,
                    created_at=utcnow(),
                )
            )
            self._log(session, "add_repo_notification", actor, repo, notification)
            return notification

    def _log(
        self,
        session: AsyncSession,
        kind: str,
        actor: Actor,
        repo: Repository,
        notification: RepositoryNotification,
    ) -> None:
        record(
            session,
            kind,
            actor,
            namespace=repo.namespace,
            repository=repo.name,
            metadata={
                "notification_id": notification.uuid,
                "event": notification.event,
                "method": notification.method,
            },
        )

    async def _existing(
        self, session: AsyncSession, namespace: str, name: str, uuid: str
    ) -> tuple[Repository, RepositoryNotification]:
        """Quay answers 400 (not 404) when delete, reset or test name an unknown notification."""
        repo = await self._repo(session, namespace, name)
        found = await _lookup(session, repo, uuid)
        if found is None:
            raise InvalidRequest(
                f"No repository notification found for: {namespace}, {name}, {uuid}"
            )
        return repo, found

    async def delete(self, namespace: str, name: str, uuid: str, actor: Actor) -> None:
        async with self.db.transaction() as session:
            repo, found = await self._existing(session, namespace, name, uuid)
            await NotificationQueries(session).delete(found.id)
            self._log(session, "delete_repo_notification", actor, repo, found)

    async def reset_failures(self, namespace: str, name: str, uuid: str, actor: Actor) -> None:
        async with self.db.transaction() as session:
            repo, found = await self._existing(session, namespace, name, uuid)
            await NotificationQueries(session).reset_failures(found.id)
            self._log(session, "reset_repo_notification", actor, repo, found)

    async def queue_test(self, namespace: str, name: str, uuid: str) -> None:
        """Queue a delivery of Quay's sample data for the notification's event."""
        async with self.db.transaction() as session:
            repo, found = await self._existing(session, namespace, name, uuid)
            now = utcnow()
            await NotificationQueries(session).add_delivery(
                NotificationDelivery(
                    notification_id=found.id,
                    event=found.event,
                    payload=ev.sample_data(self.settings, repo.namespace, repo.name),
                    is_test=True,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
        if self.on_queued is not None:
            self.on_queued()


async def _lookup(
    session: AsyncSession, repo: Repository, uuid: str
) -> RepositoryNotification | None:
    if not UUID_RE.match(uuid):  # e.g. NUL bytes, which PostgreSQL refuses in a parameter
        return None
    return await NotificationQueries(session).get(repo.id, uuid)
