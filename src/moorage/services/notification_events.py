"""Notification events: their names, Quay's payload, the outbox row written with the audit entry.

Kept free of other services so that ``services.audit`` can emit events without an import cycle.
Quay spawns a notification for exactly these audit kinds of a mirror sync, with
``{"message": <the audit entry's message>}`` added to the repository's event data.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from moorage.config import Settings
from moorage.db.base import utcnow
from moorage.db.models import NotificationEvent

SYNC_STARTED = "repo_mirror_sync_started"
SYNC_SUCCESS = "repo_mirror_sync_success"
SYNC_FAILED = "repo_mirror_sync_failed"
EVENTS = (SYNC_STARTED, SYNC_SUCCESS, SYNC_FAILED)
WEBHOOK = "webhook"
METHODS = (WEBHOOK,)
TEST_MESSAGE = "TEST NOTIFICATION"  # Quay's sample data for the mirror events


def repository_event_data(
    settings: Settings, namespace: str, name: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Quay's ``build_repository_event_data``: who the event is about, and where to see it."""
    host = settings.SERVER_HOSTNAME or f"{settings.HTTP_HOST}:{settings.HTTP_PORT}"
    repository = f"{namespace}/{name}"
    return {
        "repository": repository,
        "namespace": namespace,
        "name": name,
        "docker_url": f"{host}/{repository}",
        # Moorage's page of the repository (Quay's is /repository/...; ours lives under /ui).
        "homepage": f"{settings.PREFERRED_URL_SCHEME}://{host}/ui/repository/{repository}",
        **(extra or {}),
    }


def sample_data(settings: Settings, namespace: str, name: str) -> dict[str, Any]:
    """What ``POST .../notification/{uuid}/test`` sends (Quay's get_sample_data)."""
    return repository_event_data(settings, namespace, name, {"message": TEST_MESSAGE})


def emit(
    session: AsyncSession,
    kind: str,
    namespace: str | None,
    repository: str | None,
    metadata: dict[str, Any],
) -> None:
    """Queue the notification event of an audit entry, in the audit entry's transaction."""
    if kind not in EVENTS or namespace is None or repository is None:
        return
    session.add(
        NotificationEvent(
            event=kind,
            namespace=namespace,
            repository=repository,
            data={"message": metadata.get("message")},
            created_at=utcnow(),
        )
    )
