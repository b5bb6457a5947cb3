"""Failed-login counters shared by every API node (LOGIN_THROTTLE_SHARED).

Times are Unix seconds (float): every node compares them with its own wall clock. Usernames and
addresses are stored as HMAC-SHA256 hex digests (keyed with SECRET_KEY), never as typed.
"""

from __future__ import annotations

from sqlalchemy import Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from moorage.db.base import Base


class LoginFailureCounter(Base):
    """Consecutive failed logins of one username (``kind`` "user") or client address ("ip")."""

    __tablename__ = "login_failure_counters"
    __table_args__ = (Index("ix_login_failure_counters_last_failure", "last_failure"),)

    kind: Mapped[str] = mapped_column(String(4), primary_key=True)
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False)
    blocked_until: Mapped[float] = mapped_column(Float, nullable=False)
    last_failure: Mapped[float] = mapped_column(Float, nullable=False)


class LoginTrustedPair(Base):
    """A username that recently signed in from an address: spared that address's throttle."""

    __tablename__ = "login_trusted_pairs"
    __table_args__ = (Index("ix_login_trusted_pairs_since", "since"),)

    username: Mapped[str] = mapped_column(String(256), primary_key=True)
    address: Mapped[str] = mapped_column(String(256), primary_key=True)
    since: Mapped[float] = mapped_column(Float, nullable=False)
