"""Manifests (bytes kept exactly as pushed) and what they reference."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from moorage.db.base import Base, BigId, CreatedMixin, IdMixin


class Manifest(IdMixin, CreatedMixin, Base):
    __tablename__ = "manifests"
    __table_args__ = (
        UniqueConstraint("repository_id", "digest", name="uq_manifests_repository_id_digest"),
        Index("ix_manifests_repository_id_subject_digest", "repository_id", "subject_digest"),
    )

    repository_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False
    )
    digest: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    media_type: Mapped[str] = mapped_column(String(255), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    payload: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    artifact_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    subject_digest: Mapped[str | None] = mapped_column(String(255), nullable=True)


class ManifestBlob(Base):
    """A blob (config or layer) that a manifest references."""

    __tablename__ = "manifest_blobs"

    manifest_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("manifests.id", ondelete="CASCADE"), primary_key=True
    )
    blob_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("blobs.id", ondelete="RESTRICT"), primary_key=True, index=True
    )


class ManifestChild(Base):
    """A manifest an index references. ``child_id`` is NULL for an absent child (sparse index)."""

    __tablename__ = "manifest_children"

    parent_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("manifests.id", ondelete="CASCADE"), primary_key=True
    )
    child_digest: Mapped[str] = mapped_column(String(255), primary_key=True)
    child_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("manifests.id", ondelete="RESTRICT"), nullable=True, index=True
    )
