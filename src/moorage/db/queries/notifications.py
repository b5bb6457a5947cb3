"""Queries on repository notifications, the event outbox and the delivery queue."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from moorage.db.engine import supports_row_locks
from moorage.db.models import (
    DeliveryStatus,
    NotificationDelivery,
    NotificationEvent,
    Repository,
    RepositoryNotification,
)

PENDING = DeliveryStatus.PENDING.value


class NotificationQueries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- configured notifications ------------------------------------------------------------
    async def for_repository(self, repository_id: int) -> Sequence[RepositoryNotification]:
        stmt = (
            select(RepositoryNotification)
            .where(RepositoryNotification.repository_id == repository_id)
            .order_by(RepositoryNotification.id)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def get(self, repository_id: int, uuid: str) -> RepositoryNotification | None:
        stmt = select(RepositoryNotification).where(
            RepositoryNotification.repository_id == repository_id,
            RepositoryNotification.uuid == uuid,
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def add(self, notification: RepositoryNotification) -> RepositoryNotification:
        self.session.add(notification)
        await self.session.flush()
        return notification

    async def delete(self, notification_id: int) -> None:
        await self.session.execute(
            delete(RepositoryNotification).where(RepositoryNotification.id == notification_id)
        )

    async def reset_failures(self, notification_id: int) -> None:
        await self.session.execute(
            update(RepositoryNotification)
            .where(RepositoryNotification.id == notification_id)
            .values(number_of_failures=0)
        )

    async def add_failure(self, notification_id: int) -> None:
        await self.session.execute(
            update(RepositoryNotification)
            .where(RepositoryNotification.id == notification_id)
            .values(number_of_failures=RepositoryNotification.number_of_failures + 1)
        )

    async def targets(
        self, namespace: str, name: str, event: str, max_failures: int
    ) -> Sequence[RepositoryNotification]:
        """Enabled notifications of ``namespace/name`` watching ``event`` (Quay: < 3 failures)."""
        stmt = (
            select(RepositoryNotification)
            .join(Repository, Repository.id == RepositoryNotification.repository_id)
            .where(
                Repository.namespace == namespace,
                Repository.name == name,
                RepositoryNotification.event == event,
                RepositoryNotification.number_of_failures < max_failures,
            )
            .order_by(RepositoryNotification.id)
        )
        return (await self.session.execute(stmt)).scalars().all()

    # --- the outbox ----------------------------------------------------------------------------
    async def has_events(self) -> bool:
        return bool(
            (await self.session.execute(select(exists().select_from(NotificationEvent)))).scalar()
        )

    async def take_events(self, limit: int) -> Sequence[NotificationEvent]:
        """The oldest events, locked (PostgreSQL) so that concurrent fan-outs serialize and
        never reorder one repository's events."""
        stmt = select(NotificationEvent).order_by(NotificationEvent.id).limit(limit)
        if supports_row_locks(self.session):
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalars().all()

    async def delete_events(self, ids: Sequence[int]) -> int:
        result = await self.session.execute(
            delete(NotificationEvent).where(NotificationEvent.id.in_(list(ids)))
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    # --- deliveries ----------------------------------------------------------------------------
    async def add_delivery(self, delivery: NotificationDelivery) -> NotificationDelivery:
        self.session.add(delivery)
        await self.session.flush()
        return delivery

    def _due(self, now: dt.datetime) -> Any:
        """Pending, its time has come, not leased (or the lease expired), and no older pending
        delivery of the same notification: one notification's events arrive in order."""
        older = aliased(NotificationDelivery)
        return and_(
            NotificationDelivery.status == PENDING,
            NotificationDelivery.next_attempt_at <= now,
            or_(
                NotificationDelivery.lease_owner.is_(None),
                NotificationDelivery.lease_expires_at < now,
            ),
            ~exists().where(
                older.notification_id == NotificationDelivery.notification_id,
                older.status == PENDING,
                older.id < NotificationDelivery.id,
            ),
        )

    async def has_due(self, now: dt.datetime) -> bool:
        stmt = select(exists().where(self._due(now)))
        return bool((await self.session.execute(stmt)).scalar())

    async def due(self, now: dt.datetime, limit: int) -> Sequence[NotificationDelivery]:
        stmt = (
            select(NotificationDelivery)
            .where(self._due(now))
            .order_by(NotificationDelivery.next_attempt_at, NotificationDelivery.id)
            .limit(limit)
        )
        if supports_row_locks(self.session):
            stmt = stmt.with_for_update(skip_locked=True, of=NotificationDelivery)
        return (await self.session.execute(stmt)).scalars().all()

    async def claim(
        self,
        delivery_id: int,
        attempts_seen: int,
        owner: str,
        now: dt.datetime,
        lease_until: dt.datetime,
    ) -> bool:
        """Optimistic claim: succeeds only if nobody claimed or finished it since it was read.
        Counts the attempt now, so that an attempt whose process died still counts."""
        result = await self.session.execute(
            update(NotificationDelivery)
            .where(
                NotificationDelivery.id == delivery_id,
                NotificationDelivery.status == PENDING,
                NotificationDelivery.attempts == attempts_seen,
                or_(
                    NotificationDelivery.lease_owner.is_(None),
                    NotificationDelivery.lease_expires_at < now,
                ),
            )
            .values(
                lease_owner=owner,
                lease_expires_at=lease_until,
                attempts=attempts_seen + 1,
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def notification(self, notification_id: int) -> RepositoryNotification | None:
        return await self.session.get(RepositoryNotification, notification_id)

    async def finish(self, delivery_id: int, owner: str, values: dict[str, Any]) -> bool:
        """Record an attempt's outcome and let go of the lease, if the lease is still ours."""
        result = await self.session.execute(
            update(NotificationDelivery)
            .where(
                NotificationDelivery.id == delivery_id,
                NotificationDelivery.lease_owner == owner,
                NotificationDelivery.status == PENDING,
            )
            .values(lease_owner=None, lease_expires_at=None, **values)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def deliveries(self, notification_id: int) -> Sequence[NotificationDelivery]:
        stmt = (
            select(NotificationDelivery)
            .where(NotificationDelivery.notification_id == notification_id)
            .order_by(NotificationDelivery.id)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def purge_finished(self, before: dt.datetime) -> int:
        result = await self.session.execute(
            delete(NotificationDelivery).where(
                NotificationDelivery.status != PENDING,
                NotificationDelivery.finished_at < before,
            )
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
