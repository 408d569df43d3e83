"""slack post intents

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 12:00:00.000000

`slack_post_intents`: an incident card about to be posted, written before `chat.postMessage`
and removed with the record of the post. One left behind says an earlier attempt may have
posted the card; the next one looks for it in the channel by the key in its metadata.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "slack_post_intents",
        sa.Column("id", _ID, nullable=False),
        sa.Column("incident_id", _ID, nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_slack_post_intents_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slack_post_intents")),
        sa.UniqueConstraint(
            "incident_id", "purpose", name=op.f("uq_slack_post_intents_incident_id")
        ),
        sa.UniqueConstraint("key", name=op.f("uq_slack_post_intents_key")),
    )


def downgrade() -> None:
    op.drop_table("slack_post_intents")
