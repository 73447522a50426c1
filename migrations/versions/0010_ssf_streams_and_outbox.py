"""ssf streams and outbox

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 01:21:37

The OpenID Shared Signals transmitter (DESIGN §11): streams and their receivers, the outbox a
revocation writes in its own transaction, and the signed SETs waiting for delivery.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ssf_stream",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("endpoint_url", sa.String(length=2048), nullable=True),
        sa.Column("authorization_header", sa.Text(), nullable=True),
        sa.Column("events_requested", sa.JSON(), nullable=False),
        sa.Column("revocations", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=False),
        sa.Column("all_subjects", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("lease_until", sa.BigInteger(), nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("last_verification_at", sa.BigInteger(), nullable=False),
        sa.Column("last_delivery_at", sa.BigInteger(), nullable=True),
        sa.Column("delivered", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ssf_stream")),
    )
    with op.batch_alter_table("ssf_stream", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ssf_stream_owner"), ["owner"], unique=False)

    op.create_table(
        "ssf_event",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("stream_id", sa.String(length=64), nullable=False),
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("set_jwt", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"], ["ssf_stream.id"], name=op.f("fk_ssf_event_stream_id_ssf_stream")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ssf_event")),
    )
    with op.batch_alter_table("ssf_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ssf_event_stream_id_id"), ["stream_id", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ssf_event_stream_id_jti"), ["stream_id", "jti"], unique=True
        )

    op.create_table(
        "ssf_outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("stream_id", sa.String(length=64), nullable=False),
        sa.Column("revocation_id", sa.Integer(), nullable=False),
        sa.Column("initiator", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"], ["ssf_stream.id"], name=op.f("fk_ssf_outbox_stream_id_ssf_stream")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ssf_outbox")),
    )
    with op.batch_alter_table("ssf_outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ssf_outbox_stream_id_id"), ["stream_id", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("ssf_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ssf_outbox_stream_id_id"))

    op.drop_table("ssf_outbox")
    with op.batch_alter_table("ssf_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ssf_event_stream_id_jti"))
        batch_op.drop_index(batch_op.f("ix_ssf_event_stream_id_id"))

    op.drop_table("ssf_event")
    with op.batch_alter_table("ssf_stream", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ssf_stream_owner"))

    op.drop_table("ssf_stream")
