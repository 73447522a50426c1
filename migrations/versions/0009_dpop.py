"""dpop proofs and rules requiring dpop

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 01:40:00

DESIGN §12: the ``jti`` of every accepted DPoP proof is remembered per key while its ``iat``
is within the window (RFC 9449 §11.1), so a replay is refused on every replica; a delegation
rule may require a DPoP-bound request.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dpop_proof_jti",
        sa.Column("jkt", sa.String(length=64), nullable=False),
        sa.Column("jti", sa.String(length=255), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("jkt", "jti", name=op.f("pk_dpop_proof_jti")),
    )
    with op.batch_alter_table("dpop_proof_jti") as batch:
        batch.create_index(batch.f("ix_dpop_proof_jti_expires_at"), ["expires_at"], unique=False)
    with op.batch_alter_table("delegation_rule") as batch:
        batch.add_column(
            sa.Column("require_dpop", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("delegation_rule") as batch:
        batch.drop_column("require_dpop")
    with op.batch_alter_table("dpop_proof_jti") as batch:
        batch.drop_index(batch.f("ix_dpop_proof_jti_expires_at"))
    op.drop_table("dpop_proof_jti")
