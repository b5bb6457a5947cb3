"""Blob upload sessions. State lives here and in storage, never in process memory."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from moorage.db.base import Base, BigId, CreatedMixin, UTCDateTime, utcnow


class Upload(CreatedMixin, Base):
    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    repository_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False, index=True
    )
    size: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    chunk_count: Mapped[int] = mapped_column(default=0, nullable=False)
    # Storage keys of the received chunks, in order (see storage.paths.upload_chunk_key).
    chunk_keys: Mapped[list[str]] = mapped_column(JSON, default=list, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False, index=True
    )
