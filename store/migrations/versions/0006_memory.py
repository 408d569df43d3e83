"""incident memory: the groups of an incident, correlated incidents

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:00:00.000000

`incident_groups` maps Alertmanager groups to incidents (one incident may hold several when
`correlation.merge` is on); every existing incident's own group is copied in, with the
incident's state. `incident_links` records incidents correlated with each other. The index on
`incidents.created_at` serves the correlation window and the statistics; `incidents.root_cause`
(the latest analysis's, copied in here) is what the similarity search reads.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "incident_groups",
        sa.Column("incident_id", _ID, nullable=False),
        sa.Column("group_key", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_groups_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("incident_id", "group_key", name=op.f("pk_incident_groups")),
    )
    op.create_index("ix_incident_groups_group_key", "incident_groups", ["group_key"])
    op.create_table(
        "incident_links",
        sa.Column("incident_id", _ID, nullable=False),
        sa.Column("related_id", _ID, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_links_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["related_id"],
            ["incidents.id"],
            name=op.f("fk_incident_links_related_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("incident_id", "related_id", name=op.f("pk_incident_links")),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("root_cause", sa.Text(), nullable=True))
        batch_op.create_index("ix_incidents_created_at", ["created_at"], unique=False)
    root_cause = (
        "body->>'root_cause'"
        if op.get_bind().dialect.name == "postgresql"
        else "json_extract(body, '$.root_cause')"
    )
    op.execute(
        f"UPDATE incidents SET root_cause = (SELECT {root_cause} FROM analyses "
        "WHERE analyses.incident_id = incidents.id ORDER BY analyses.id DESC LIMIT 1)"
    )
    op.execute(
        "INSERT INTO incident_groups (incident_id, group_key, status, joined_at) "
        "SELECT id, group_key, CASE WHEN status = 'resolved' THEN 'resolved' ELSE 'firing' END, "
        "created_at FROM incidents WHERE group_key IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index("ix_incidents_created_at")
        batch_op.drop_column("root_cause")
    op.drop_table("incident_links")
    op.drop_index("ix_incident_groups_group_key", table_name="incident_groups")
    op.drop_table("incident_groups")
