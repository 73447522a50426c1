"""one namespace

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-12 10:00:00

One namespace (DESIGN §3): a name in ``aud``, ``sub`` or an ``act`` level always means one
NHI, so no NHI's ``sub`` may be another NHI's ``client_id`` or resource URI, and no resource
URI another NHI's ``client_id`` (the unique ``client_id`` and ``sub`` columns and the resource
URI primary key already keep each column to itself). Registration refuses such names from now
on; a registry that already holds some cannot be upgraded silently: the upgrade stops before
changing anything and names every colliding pair, so that an operator can give one NHI of
each pair another name and upgrade again.

Rules match external subjects by (issuer, ``sub``): a delegation rule gains
``subject_issuer``, the trusted issuer a ``sub`` rule's subject must come from. A rule created
before has none, so it keeps matching NHI subjects only (chains rooted at this STS): a rule
written for a person of a trusted issuer (``--subject sub:alice``) stops matching that person
until it is created again with the issuer (``--subject-issuer``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from sts.store.migrate import MigrationRefused

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Colliding pairs, each as (NHI, its field, the name, the other NHI, the other's field).
COLLISIONS = sa.text(
    """
    SELECT a.client_id AS nhi, 'sub' AS field, a.sub AS name,
           b.client_id AS other, 'client_id' AS other_field
      FROM nhi a JOIN nhi b ON b.client_id = a.sub AND b.id <> a.id
    UNION ALL
    SELECT a.client_id, 'sub', a.sub, b.client_id, 'resource URI'
      FROM nhi a
      JOIN nhi_resource r ON r.uri = a.sub AND r.nhi_id <> a.id
      JOIN nhi b ON b.id = r.nhi_id
    UNION ALL
    SELECT a.client_id, 'resource URI', r.uri, b.client_id, 'client_id'
      FROM nhi_resource r
      JOIN nhi a ON a.id = r.nhi_id
      JOIN nhi b ON b.client_id = r.uri AND b.id <> a.id
    ORDER BY 1, 2, 3, 4
    """
)


def check_one_namespace() -> None:
    """Refuse to upgrade a registry whose NHIs' names collide, naming every pair."""
    if context.is_offline_mode():
        return  # a generated script cannot look at the data
    rows = op.get_bind().execute(COLLISIONS).all()
    if not rows:
        return
    pairs = [
        f"NHI {r.nhi!r}: {r.field} {r.name!r} is the {r.other_field} of NHI {r.other!r}"
        for r in rows
    ]
    raise MigrationRefused(
        "the registry breaks the one namespace of NHI names (DESIGN §3): a name in aud, sub "
        "or act must mean one NHI. Change one name of each pair, then upgrade again "
        "(nothing was changed): " + "; ".join(pairs)
    )


def upgrade() -> None:
    check_one_namespace()
    with op.batch_alter_table("delegation_rule") as batch:
        batch.add_column(sa.Column("subject_issuer", sa.String(length=2048), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("delegation_rule") as batch:
        batch.drop_column("subject_issuer")
