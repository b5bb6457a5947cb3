"""failed-login counters shared by the API nodes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 11:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_failure_counters",
        sa.Column("kind", sa.String(length=4), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("blocked_until", sa.Float(), nullable=False),
        sa.Column("last_failure", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "key", name=op.f("pk_login_failure_counters")),
    )
    op.create_index(
        "ix_login_failure_counters_last_failure",
        "login_failure_counters",
        ["last_failure"],
        unique=False,
    )
    op.create_table(
        "login_trusted_pairs",
        sa.Column("username", sa.String(length=256), nullable=False),
        sa.Column("address", sa.String(length=256), nullable=False),
        sa.Column("since", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("username", "address", name=op.f("pk_login_trusted_pairs")),
    )
    op.create_index("ix_login_trusted_pairs_since", "login_trusted_pairs", ["since"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_login_trusted_pairs_since", table_name="login_trusted_pairs")
    op.drop_table("login_trusted_pairs")
    op.drop_index("ix_login_failure_counters_last_failure", table_name="login_failure_counters")
    op.drop_table("login_failure_counters")
