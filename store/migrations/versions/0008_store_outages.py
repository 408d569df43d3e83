"""store outages

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 09:00:00.000000

`store_probes` holds the row the store writer updates to learn that the store takes writes
again after they failed (store/health.py). `investigations.store_retries` counts the times a
run was resumed after the store failed under it (agents/runner.py), so the retries are bounded.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "store_probes",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("room", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_store_probes")),
    )
    with op.batch_alter_table("investigations") as batch:
        batch.add_column(
            sa.Column("store_retries", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("investigations") as batch:
        batch.drop_column("store_retries")
    op.drop_table("store_probes")
