"""The incident's state changes: acknowledge, resolve, declare, and stopping its ladder.

Each is a conditional UPDATE (store/incidents.py) with its timeline event in the caller's
transaction (they run on the store writer), so a second click, a Slack retry or another
replica doing the same thing changes nothing. Whatever ends the wait for a human (an
acknowledgement, a resolve by a person or by Alertmanager) stops the escalation ladder through
`store.escalations.stop_ladder`, the one way to do it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from firebreak.store import incidents
from firebreak.store.escalations import stop_ladder
from firebreak.store.incidents import record_event, utcnow
from firebreak.store.schemas import EventType, IncidentStatus


@dataclass(frozen=True)
class Transition:
    """What a state change did: `changed` is False when it was already done (or impossible)."""

    changed: bool
    status: IncidentStatus | None  # None: no such incident
    acknowledged_by: str | None = None


def acknowledge(conn: Connection, incident_id: int, actor: str) -> Transition:
    now = utcnow()
    changed = incidents.change_status(
        conn,
        incident_id,
        only_from=[IncidentStatus.TRIGGERED],
        values={
            "status": IncidentStatus.ACKNOWLEDGED.value,
            "acknowledged_at": now,
            "acknowledged_by": actor,
        },
    )
    if changed:
        stop_ladder(conn, incident_id)
        record_event(conn, incident_id, EventType.ACKNOWLEDGED, actor, f"Acknowledged by {actor}")
    return _result(conn, incident_id, changed)


def resolve(conn: Connection, incident_id: int, actor: str) -> Transition:
    changed = incidents.change_status(
        conn,
        incident_id,
        only_from=[IncidentStatus.TRIGGERED, IncidentStatus.ACKNOWLEDGED],
        values={
            "status": IncidentStatus.RESOLVED.value,
            "resolved_at": utcnow(),
            "resolved_by": actor,
        },
    )
    if changed:
        stop_ladder(conn, incident_id)
        record_event(conn, incident_id, EventType.RESOLVED, actor, f"Resolved by {actor}")
    return _result(conn, incident_id, changed)


def declare(
    conn: Connection,
    title: str,
    actor: str,
    *,
    severity: str = "unknown",
    service: str = "unknown",
) -> int:
    """A human-declared incident: no Alertmanager group, same life cycle."""
    incident_id = incidents.insert_incident(
        conn, group_key=None, title=title, severity=severity, service=service, labels={}
    )
    record_event(conn, incident_id, EventType.INCIDENT_CREATED, actor, f"Declared by {actor}")
    return incident_id


def _result(conn: Connection, incident_id: int, changed: bool) -> Transition:
    found = incidents.status_of(conn, incident_id)
    if found is None:
        return Transition(False, None)
    status, acknowledged_by = found
    return Transition(changed, status, acknowledged_by)
