"""incident silences

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00.000000

The Alertmanager silence an incident's group is under (the card's "Silenced until … by …" and
its Unsilence button), one row per incident (store/oncall.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "incident_silences",
        sa.Column("incident_id", _ID, nullable=False),
        sa.Column("silence_id", sa.String(length=64), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_silences_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("incident_id", name=op.f("pk_incident_silences")),
    )


def downgrade() -> None:
    op.drop_table("incident_silences")
