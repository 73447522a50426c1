"""auth failures by source

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 23:40:00

Failed authentications are counted per client *and* source (the peer address, or the address
a trusted proxy forwards), so a stranger who knows a client_id cannot lock that client out
from everywhere (DESIGN §5.1). The counters are transient (one window long): the table is
recreated empty.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _create(with_source: bool) -> None:
    columns = [sa.Column("client_id", sa.String(length=255), nullable=False)]
    if with_source:
        columns.append(sa.Column("source", sa.String(length=64), nullable=False))
    op.create_table(
        "auth_failure",
        *columns,
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            *(["client_id", "source"] if with_source else ["client_id"]),
            name=op.f("pk_auth_failure"),
        ),
    )


def upgrade() -> None:
    op.drop_table("auth_failure")
    _create(with_source=True)


def downgrade() -> None:
    op.drop_table("auth_failure")
    _create(with_source=False)
