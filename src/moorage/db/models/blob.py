"""Content-addressed blobs (global) and their links into repositories."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from moorage.db.base import Base, BigId, CreatedMixin, IdMixin, UTCDateTime, utcnow


class Blob(IdMixin, CreatedMixin, Base):
    """One stored blob. Its bytes live in storage under paths.blob_key(digest)."""

    __tablename__ = "blobs"

    digest: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)


class RepositoryBlob(Base):
    """A blob is visible in a repository only through a link (upload, mount or mirror)."""

    __tablename__ = "repository_blobs"

    repository_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True
    )
    blob_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("blobs.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    linked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
