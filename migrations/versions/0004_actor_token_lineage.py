"""actor token lineage

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 23:30:00

A token minted with an actor token records which one (our own token's ``jti``, or the trusted
issuer that vouched for the actor), so revoking that token or issuer reaches it (DESIGN §7).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("issued_token") as batch:
        batch.add_column(sa.Column("actor_jti", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("actor_issuer", sa.String(length=2048), nullable=True))
        batch.create_index(batch.f("ix_issued_token_actor_jti"), ["actor_jti"], unique=False)
        batch.create_index(
            batch.f("ix_issued_token_actor_issuer"), ["actor_issuer"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("issued_token") as batch:
        batch.drop_index(batch.f("ix_issued_token_actor_issuer"))
        batch.drop_index(batch.f("ix_issued_token_actor_jti"))
        batch.drop_column("actor_issuer")
        batch.drop_column("actor_jti")
