"""OCI repositories: ``namespace/name``, with Quay's visibility and state."""

from __future__ import annotations

import enum

from sqlalchemy import Enum, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from moorage.db.base import Base, CreatedMixin, IdMixin


class RepositoryState(enum.IntEnum):
    """Quay's RepositoryState values (stored as small integers, as Quay does)."""

    NORMAL = 0
    READ_ONLY = 1
    MIRROR = 2
    MARKED_FOR_DELETION = 3


class Visibility(enum.StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"


class Repository(IdMixin, CreatedMixin, Base):
    __tablename__ = "repositories"
    __table_args__ = (UniqueConstraint("namespace", "name", name="uq_repositories_namespace_name"),)

    namespace: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    visibility: Mapped[Visibility] = mapped_column(
        Enum(
            Visibility, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]
        ),
        default=Visibility.PRIVATE,
        nullable=False,
    )
    state: Mapped[int] = mapped_column(
        default=int(RepositoryState.NORMAL), nullable=False, index=True
    )
    description: Mapped[str | None] = mapped_column(String(4096), nullable=True)

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"
