"""access reports

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 01:40:00

What each hop touched (DESIGN §10): the audience of a token reports the data it accessed
under it. Reports keep the token's ``jti`` and ``txn`` and have no foreign key to the
lineage, so housekeeping of lineage rows never loses them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_report",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("txn", sa.String(length=64), nullable=False),
        sa.Column("reported_by", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.String(length=2048), nullable=False),
        sa.Column("subject_issuer", sa.String(length=2048), nullable=False),
        sa.Column("chain", sa.JSON(), nullable=False),
        sa.Column("resource", sa.String(length=2048), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("data_classes", sa.JSON(), nullable=False),
        sa.Column("records", sa.BigInteger(), nullable=True),
        sa.Column("bytes", sa.BigInteger(), nullable=True),
        sa.Column("destination", sa.String(length=2048), nullable=True),
        sa.Column("outcome", sa.String(length=64), nullable=True),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_report")),
    )
    with op.batch_alter_table("access_report") as batch:
        batch.create_index(batch.f("ix_access_report_jti"), ["jti"], unique=False)
        batch.create_index(batch.f("ix_access_report_txn"), ["txn"], unique=False)
        batch.create_index(
            batch.f("ix_access_report_resource_at"), ["resource", "at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("access_report")
