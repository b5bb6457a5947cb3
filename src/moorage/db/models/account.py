"""Accounts (users, organizations, robots), organization membership, access tokens.

As in Quay, one table holds every namespace owner: users, organizations and robots. A robot's
name is ``namespace+shortname`` and it belongs to the namespace's account.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, Boolean, Enum, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from moorage.db.base import Base, BigId, CreatedMixin, IdMixin, UTCDateTime


class AccountKind(enum.StrEnum):
    USER = "user"
    ORGANIZATION = "organization"
    ROBOT = "robot"


class OrgRole(enum.StrEnum):
    ADMIN = "admin"
    CREATOR = "creator"
    MEMBER = "member"


def _enum(cls: type[enum.StrEnum]) -> Enum:
    return Enum(cls, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class Account(IdMixin, CreatedMixin, Base):
    __tablename__ = "accounts"

    username: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    kind: Mapped[AccountKind] = mapped_column(_enum(AccountKind), nullable=False, index=True)
    email: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # argon2id hash for users; the robot token's hash for robots; NULL for organizations.
    secret_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # For robots: the account (user or organization) whose namespace the robot lives in.
    owner_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=True, index=True
    )
    description: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    # Superusers are SUPER_USERS from the config plus accounts flagged here (`admin create-user`).
    superuser: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)


class OrgMember(Base):
    __tablename__ = "org_members"

    org_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[OrgRole] = mapped_column(_enum(OrgRole), nullable=False)


class RepoRole(enum.StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


class RepositoryPermission(Base):
    __tablename__ = "repository_permissions"

    repository_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[RepoRole] = mapped_column(_enum(RepoRole), nullable=False)


class AccessToken(IdMixin, CreatedMixin, Base):
    """An OAuth-style access token: opaque, stored as a SHA-256 hash, carrying scopes."""

    __tablename__ = "access_tokens"
    __table_args__ = (UniqueConstraint("token_hash", name="uq_access_tokens_token_hash"),)

    account_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    token_prefix: Mapped[str] = mapped_column(String(8), nullable=False)
    scopes: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
