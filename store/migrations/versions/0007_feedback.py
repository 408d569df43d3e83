"""analysis feedback

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:00:00.000000

`analysis_feedback` holds people's verdicts on analyses (store/feedback.py): `correct`, or
`wrong` with the actual cause. Only added to; the latest row of an analysis is its verdict.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "analysis_feedback",
        sa.Column("id", _ID, nullable=False),
        sa.Column("incident_id", _ID, nullable=False),
        sa.Column("analysis_id", _ID, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("actual_cause", sa.Text(), nullable=True),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["analysis_id"],
            ["analyses.id"],
            name=op.f("fk_analysis_feedback_analysis_id_analyses"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_analysis_feedback_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analysis_feedback")),
    )
    op.create_index(op.f("ix_analysis_feedback_incident_id"), "analysis_feedback", ["incident_id"])
    op.create_index("ix_analysis_feedback_analysis_id", "analysis_feedback", ["analysis_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_analysis_feedback_analysis_id", table_name="analysis_feedback")
    op.drop_index(op.f("ix_analysis_feedback_incident_id"), table_name="analysis_feedback")
    op.drop_table("analysis_feedback")
