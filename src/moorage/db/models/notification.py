"""Repository notifications (Quay's RepositoryNotification) and their durable delivery queue.

An event worth notifying about is first written as a ``notification_events`` row in the same
transaction as the audit entry that describes it (an outbox). The delivery loop turns each
event into one ``notification_deliveries`` row per matching notification, then claims due
deliveries with a lease, exactly as mirror workers claim mirrors, so several processes may
share the queue and a dead process's deliveries are taken over.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from moorage.db.base import Base, BigId, CreatedMixin, IdMixin, UTCDateTime


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its next attempt (or being attempted, under a lease)
    DELIVERED = "delivered"
    FAILED = "failed"  # every attempt failed
    DROPPED = "dropped"  # not sent: the notification was disabled by repeated failures


def new_uuid() -> str:
    return str(uuid.uuid4())


class RepositoryNotification(IdMixin, CreatedMixin, Base):
    """One configured notification: an event of a repository, delivered by a method."""

    __tablename__ = "repository_notifications"
    __table_args__ = (
        Index("ix_repository_notifications_repository_id_event", "repository_id", "event"),
    )

    uuid: Mapped[str] = mapped_column(String(36), default=new_uuid, unique=True, nullable=False)
    repository_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False
    )
    event: Mapped[str] = mapped_column(String(64), nullable=False)
    method: Mapped[str] = mapped_column(String(32), nullable=False)
    title: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # The method's configuration, e.g. {"url": ...} for a webhook. Never logged: a webhook URL
    # often carries a token.
    config: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    event_config: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    number_of_failures: Mapped[int] = mapped_column(default=0, nullable=False)


class NotificationEvent(IdMixin, CreatedMixin, Base):
    """An event not yet fanned out into deliveries (written with its audit entry)."""

    __tablename__ = "notification_events"

    event: Mapped[str] = mapped_column(String(64), nullable=False)
    namespace: Mapped[str] = mapped_column(String(255), nullable=False)
    repository: Mapped[str] = mapped_column(String(255), nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)


class NotificationDelivery(IdMixin, CreatedMixin, Base):
    """One event to deliver to one notification, with its attempts and lease."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        Index("ix_notification_deliveries_due", "status", "next_attempt_at"),
        Index(
            "ix_notification_deliveries_notification_id_status",
            "notification_id",
            "status",
            "id",
        ),
    )

    notification_id: Mapped[int] = mapped_column(
        BigId,
        # Named here: the conventional name would pass PostgreSQL's 63-character limit.
        ForeignKey(
            "repository_notifications.id",
            ondelete="CASCADE",
            name="fk_notification_deliveries_notification_id",
        ),
        nullable=False,
    )
    event: Mapped[str] = mapped_column(String(64), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    is_test: Mapped[bool] = mapped_column(default=False, nullable=False)
    status: Mapped[str] = mapped_column(
        String(16), default=DeliveryStatus.PENDING.value, nullable=False
    )
    attempts: Mapped[int] = mapped_column(default=0, nullable=False)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # What went wrong last: a status code or an error class, never the URL or response body.
    last_error: Mapped[str | None] = mapped_column(String(255), nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
