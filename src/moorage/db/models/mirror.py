"""Repository mirror configurations (Quay's RepoMirrorConfig) and their sync runs.

The configuration row is also the job queue entry: scheduling state (status, start date, lease)
lives on it, and workers claim it with a lease renewed by heartbeats.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from moorage.db.base import Base, BigId, CreatedMixin, IdMixin, UTCDateTime


class SyncStatus(enum.IntEnum):
    """Quay's RepoMirrorStatus, stored as the same integers."""

    CANCEL = -2
    FAIL = -1
    NEVER_RUN = 0
    SUCCESS = 1
    SYNCING = 2
    SYNC_NOW = 3


class RunStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


# PostgreSQL NOTIFY channel: a mirror became due now (sync-now); workers LISTEN on it.
MIRRORS_DUE = "moorage_mirrors_due"
MAX_SYNC_RETRIES = 3
RULE_KIND_TAG_GLOB_CSV = "tag_glob_csv"


def new_txn() -> str:
    return str(uuid.uuid4())


class MirrorConfig(IdMixin, CreatedMixin, Base):
    __tablename__ = "mirror_configs"
    __table_args__ = (Index("ix_mirror_configs_due", "sync_status", "sync_start_date"),)

    repository_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("repositories.id", ondelete="CASCADE"), unique=True, nullable=False
    )
    is_enabled: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    mirror_type: Mapped[int] = mapped_column(default=1, nullable=False)
    internal_robot_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("accounts.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    external_reference: Mapped[str] = mapped_column(Text, nullable=False)
    # Encrypted with auth.crypto.FieldCipher (v0$$...). Never returned, never logged.
    external_registry_username: Mapped[str | None] = mapped_column(String(4096), nullable=True)
    external_registry_password: Mapped[str | None] = mapped_column(String(9000), nullable=True)
    external_registry_config: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    architecture_filter: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    rule_kind: Mapped[str] = mapped_column(
        String(32), default=RULE_KIND_TAG_GLOB_CSV, nullable=False
    )
    rule_value: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    sync_interval: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sync_start_date: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sync_expiration_date: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sync_retries_remaining: Mapped[int] = mapped_column(default=MAX_SYNC_RETRIES, nullable=False)
    sync_status: Mapped[int] = mapped_column(default=int(SyncStatus.NEVER_RUN), nullable=False)
    sync_transaction_id: Mapped[str] = mapped_column(String(36), default=new_txn, nullable=False)
    skopeo_timeout: Mapped[int] = mapped_column(BigInteger, default=300, nullable=False)
    # Lease of the worker currently syncing (renewed by heartbeats; expiry = worker presumed dead).
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class MirrorRun(IdMixin, Base):
    """One sync attempt: feeds last_sync, last_error and GET .../mirror/runs."""

    __tablename__ = "mirror_runs"
    __table_args__ = (Index("ix_mirror_runs_config_id_id", "config_id", "id"),)

    config_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("mirror_configs.id", ondelete="CASCADE"), nullable=False
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    trigger: Mapped[str] = mapped_column(String(16), nullable=False)
    worker: Mapped[str | None] = mapped_column(String(128), nullable=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    tags_total: Mapped[int] = mapped_column(default=0, nullable=False)
    tags_copied: Mapped[int] = mapped_column(default=0, nullable=False)
    tags_skipped: Mapped[int] = mapped_column(default=0, nullable=False)
    tags_failed: Mapped[int] = mapped_column(default=0, nullable=False)
    tags_deleted: Mapped[int] = mapped_column(default=0, nullable=False)
    bytes_copied: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    error_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)


class MirrorWorkerBeat(Base):
    """Last sign of life of each mirror worker process (for the health endpoints)."""

    __tablename__ = "mirror_workers"

    worker_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    last_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)
