"""Audit log writing. Entries are added in the caller's transaction; secrets are never passed.

Entries of the kinds that repository notifications watch (the mirror sync events) also queue
a notification event in the same transaction (services.notification_events).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from moorage.auth.permissions import Principal
from moorage.db.base import utcnow
from moorage.db.models import AuditLog
from moorage.services.notification_events import emit as emit_notification_event

SECRET_KEYS = frozenset({"password", "token", "secret", "external_registry_password"})


@dataclass(frozen=True, slots=True)
class Actor:
    """Who performs a change, and from where (for the audit log)."""

    principal: Principal
    ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(Principal("system", "moorage"))


def record(
    session: AsyncSession,
    kind: str,
    actor: Actor | None,
    *,
    namespace: str | None = None,
    repository: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Add one audit entry to ``session`` (committed with the change it describes)."""
    meta = {k: v for k, v in (metadata or {}).items() if k not in SECRET_KEYS}
    if namespace is not None:
        meta.setdefault("namespace", namespace)
    if repository is not None:
        meta.setdefault("repo", repository)
    if actor is not None and actor.user_agent:
        meta.setdefault("user-agent", actor.user_agent[:255])
    principal = actor.principal if actor else None
    session.add(
        AuditLog(
            kind=kind,
            namespace=namespace,
            repository=repository,
            performer=principal.name if principal and not principal.is_anonymous else None,
            performer_kind=principal.kind if principal else None,
            ip=actor.ip if actor else None,
            metadata_json=meta,
            created_at=utcnow(),
        )
    )
    emit_notification_event(session, kind, namespace, repository, meta)
