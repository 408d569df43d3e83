"""De-duplication shared by every replica: a key of a kind is claimed once.

Whoever does something at most once across retries, redeliveries and replicas claims its key
here first, in the transaction that records the thing (or before its side effect), and goes on
only when the claim is new: `ON CONFLICT DO NOTHING` on (kind, key) lets exactly one claimer
through on SQLite and PostgreSQL alike.

How long a key is kept depends on whether it names an incident: a key claimed with one lives as
long as that incident (store/retention.py deletes it with the incident), whatever its age; the
others are pruned by age (`prune`, run by the Slack outbox's maintenance every few minutes
with `keep_seen_s`, a day).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, delete, select

from firebreak.store.db import conflict_insert
from firebreak.store.models import DedupKey

__all__ = ["HANDOFF", "MAX_KEY", "SLACK", "TOOL_CALL", "claim", "claimed", "prune"]

SLACK = "slack"  # Slack deliveries (`event:…`, `action:…`, `command:…`)
HANDOFF = "handoff"  # on-call handoff greetings (`SCHEDULE:EPOCH`)
TOOL_CALL = "tool_call"  # investigation tool-call events (`RUN_ID:CALL_ID`), with the incident
MAX_KEY = 255


def claim(conn: Connection, kind: str, key: str, *, incident_id: int | None = None) -> bool:
    """True the first time `key` of `kind` is claimed (by any replica), False for every repeat.
    With `incident_id` the key is kept as long as that incident."""
    result = conn.execute(
        conflict_insert(conn, DedupKey)
        .values(kind=kind, key=key[:MAX_KEY], incident_id=incident_id, seen_at=_now())
        .on_conflict_do_nothing(index_elements=["kind", "key"])
    )
    return result.rowcount == 1


def claimed(conn: Connection, kind: str, keys: Iterable[str]) -> set[str]:
    """Which of `keys` of `kind` have been claimed already."""
    wanted = [key[:MAX_KEY] for key in keys]
    if not wanted:
        return set()
    rows = conn.execute(select(DedupKey.key).where(DedupKey.kind == kind, DedupKey.key.in_(wanted)))
    return {row.key for row in rows}


def prune(conn: Connection, older_than: timedelta) -> None:
    """Forget the keys claimed longer than `older_than` ago, except those kept with an
    incident."""
    conn.execute(
        delete(DedupKey).where(
            DedupKey.seen_at < _now() - older_than, DedupKey.incident_id.is_(None)
        )
    )


def _now() -> datetime:
    return datetime.now(UTC)
