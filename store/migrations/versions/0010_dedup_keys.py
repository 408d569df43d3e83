"""dedup keys

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 14:00:00.000000

`dedup_keys` replaces `slack_events_seen`: one de-duplication table for every kind of key
(`slack` deliveries, on-call `handoff` greetings, investigation `tool_call` events), keyed by
(kind, key). A key may name its incident, and then lives as long as the incident does instead
of being pruned by age. The rows are carried over: the `handoff:` and `tool_call:` prefixes
become kinds, and a tool call's incident is found from its investigation run.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_HANDOFF = "handoff:"
_TOOL_CALL = "tool_call:"


def upgrade() -> None:
    op.create_table(
        "dedup_keys",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("incident_id", _ID, nullable=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_dedup_keys_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("kind", "key", name=op.f("pk_dedup_keys")),
    )
    with op.batch_alter_table("dedup_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dedup_keys_incident_id"), ["incident_id"])
        batch_op.create_index(batch_op.f("ix_dedup_keys_seen_at"), ["seen_at"])
    op.execute(
        "INSERT INTO dedup_keys (kind, key, incident_id, seen_at) "
        f"SELECT 'handoff', substr(key, {len(_HANDOFF) + 1}), NULL, seen_at "
        f"FROM slack_events_seen WHERE key LIKE '{_HANDOFF}%'"
    )
    op.execute(
        "INSERT INTO dedup_keys (kind, key, incident_id, seen_at) "
        f"SELECT 'tool_call', substr(s.key, {len(_TOOL_CALL) + 1}), i.incident_id, s.seen_at "
        "FROM slack_events_seen s JOIN investigations i "
        f"ON substr(s.key, 1, {len(_TOOL_CALL)} + length(i.thread_id) + 1) "
        f"= '{_TOOL_CALL}' || i.thread_id || ':'"
    )
    op.execute(
        "INSERT INTO dedup_keys (kind, key, incident_id, seen_at) "
        "SELECT 'slack', key, NULL, seen_at FROM slack_events_seen "
        f"WHERE key NOT LIKE '{_HANDOFF}%' AND key NOT LIKE '{_TOOL_CALL}%'"
    )
    with op.batch_alter_table("slack_events_seen", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_slack_events_seen_seen_at"))
    op.drop_table("slack_events_seen")


def downgrade() -> None:
    op.create_table(
        "slack_events_seen",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_slack_events_seen")),
    )
    with op.batch_alter_table("slack_events_seen", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_slack_events_seen_seen_at"), ["seen_at"])
    op.execute(
        "INSERT INTO slack_events_seen (key, seen_at) "
        "SELECT CASE kind WHEN 'slack' THEN key ELSE substr(kind || ':' || key, 1, 255) END, "
        "seen_at FROM dedup_keys"
    )
    with op.batch_alter_table("dedup_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dedup_keys_seen_at"))
        batch_op.drop_index(batch_op.f("ix_dedup_keys_incident_id"))
    op.drop_table("dedup_keys")
