"""circuit breaker overrides

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 10:00:00.000000

The operators' forced states of the circuit breakers (POST /api/v1/breakers/{name}/open|close|
reset), one row per breaker, read by every replica (store/breakers.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "breaker_overrides",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_by", sa.String(length=200), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_breaker_overrides")),
    )


def downgrade() -> None:
    op.drop_table("breaker_overrides")
