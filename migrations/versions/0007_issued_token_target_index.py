"""issued token target index

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 10:00:00

Revoking or disabling an NHI also revokes every token addressed to it (its ``aud``, the
lineage's ``target``), so the revocation walk looks tokens up by target (DESIGN §7).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("issued_token") as batch:
        batch.create_index(batch.f("ix_issued_token_target"), ["target"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("issued_token") as batch:
        batch.drop_index(batch.f("ix_issued_token_target"))
