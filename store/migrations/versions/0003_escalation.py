"""escalation reminders and remediation runs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 10:00:00.000000

The escalation ladder itself lives in `escalations` (0001). This adds what the scheduler
reconciles reminders and approved remediations from. APScheduler's own job table
(`apscheduler_jobs`) is created by its job store, not here: its layout belongs to APScheduler.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "incident_reminders",
        sa.Column("incident_id", _ID, nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_reminders_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("incident_id", name=op.f("pk_incident_reminders")),
    )
    op.create_table(
        "remediation_runs",
        sa.Column("id", _ID, nullable=False),
        sa.Column("incident_id", _ID, nullable=False),
        sa.Column("action", sa.String(length=200), nullable=False),
        sa.Column("definition", _JSON, nullable=False),
        sa.Column("parameters", _JSON, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("approved_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=True),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=True),
        sa.Column("approval_key", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_remediation_runs_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remediation_runs")),
        sa.UniqueConstraint("approval_key", name=op.f("uq_remediation_runs_approval_key")),
    )
    with op.batch_alter_table("remediation_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_remediation_runs_incident_id"), ["incident_id"], unique=False
        )
        batch_op.create_index("ix_remediation_runs_next_at", ["next_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("remediation_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_remediation_runs_next_at")
        batch_op.drop_index(batch_op.f("ix_remediation_runs_incident_id"))
    op.drop_table("remediation_runs")
    op.drop_table("incident_reminders")
