"""What the scheduler must fire for escalation: ladder steps and reminders, and when.

The rows come from the store (store/escalations.py); the timing rules live here, so the
scheduler's reconciliation and the flows agree on when a reminder is due.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from firebreak.scheduler.core import Due
from firebreak.store import escalations

__all__ = [
    "LADDER",
    "REMINDER",
    "open_incidents_paging",
    "pending_ladders",
    "pending_reminders",
    "reminder_due",
]

LADDER = "esc"  # the scheduler's job kinds: ladder steps and reminders
REMINDER = "rmd"


def reminder_due(
    acknowledged_at: datetime, last_at: datetime | None, interval_s: float
) -> datetime:
    """Reminders count from the later of the acknowledgement and the last reminder, so a
    re-acknowledged (reopened) incident starts a fresh interval."""
    base = acknowledged_at if last_at is None or last_at < acknowledged_at else last_at
    return base + timedelta(seconds=interval_s)


def pending_ladders(conn: Connection) -> list[Due]:
    return [
        Due(LADDER, incident_id, step, next_at)
        for incident_id, step, next_at in escalations.running_ladders(conn)
    ]


def pending_reminders(conn: Connection, interval_s: float) -> list[Due]:
    return [
        Due(REMINDER, r.incident_id, r.sent, reminder_due(r.acknowledged_at, r.last_at, interval_s))
        for r in escalations.acknowledged_reminders(conn)
    ]


def open_incidents_paging(conn: Connection, target: str) -> list[tuple[int, str, str]]:
    """(id, title, status) of the open incidents whose snapshotted policy names `target`
    (`schedule:NAME`) in some level, oldest first."""
    return [
        (incident_id, title, status)
        for incident_id, title, status, policy in escalations.open_ladders(conn)
        if any(target in (level.get("notify") or []) for level in _levels(policy))
    ]


def _levels(policy: Any) -> list[dict[str, Any]]:
    levels = policy.get("levels") if isinstance(policy, dict) else None
    return [level for level in levels or [] if isinstance(level, dict)]
