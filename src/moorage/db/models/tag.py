"""Tags with history (Quay's lifetime_start/lifetime_end model): at most one alive per name."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from moorage.db.base import Base, BigId, IdMixin


class Tag(IdMixin, Base):
    __tablename__ = "tags"
    __table_args__ = (
        Index(
            "uq_tags_alive_name",
            "repository_id",
            "name",
            unique=True,
            postgresql_where=text("lifetime_end_ms IS NULL"),
            sqlite_where=text("lifetime_end_ms IS NULL"),
        ),
        Index("ix_tags_repository_id_name", "repository_id", "name"),
    )

    repository_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    manifest_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("manifests.id", ondelete="CASCADE"), nullable=False, index=True
    )
    lifetime_start_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    lifetime_end_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
