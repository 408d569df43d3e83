"""The incident's state changes: acknowledge, resolve, declare, and stopping its ladder.

Each is a conditional UPDATE with its timeline event in the caller's transaction (they run on
the store writer), so a second click, a Slack retry or another replica doing the same thing
changes nothing. Whatever ends the wait for a human (an acknowledgement, a resolve by a person
or by Alertmanager) stops the escalation ladder through `stop_ladder`, the one way to do it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update

from firebreak.store.incidents import record_event, utcnow
from firebreak.store.models import EscalationState, Incident
from firebreak.store.schemas import EventType, IncidentStatus

MAX_TITLE = 300


@dataclass(frozen=True)
class Transition:
    """What a state change did: `changed` is False when it was already done (or impossible)."""

    changed: bool
    status: IncidentStatus | None  # None: no such incident
    acknowledged_by: str | None = None


def acknowledge(conn: Connection, incident_id: int, actor: str) -> Transition:
    now = utcnow()
    changed = _transition(
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
    changed = _transition(
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
    incident_id = insert_incident(
        conn, group_key=None, title=title, severity=severity, service=service, labels={}
    )
    record_event(conn, incident_id, EventType.INCIDENT_CREATED, actor, f"Declared by {actor}")
    return incident_id


def insert_incident(
    conn: Connection,
    *,
    group_key: str | None,
    title: str,
    severity: str,
    service: str,
    labels: dict[str, str],
    truncated_alerts: int = 0,
) -> int:
    """A new triggered incident (from Alertmanager or declared by a person)."""
    now = utcnow()
    incident_id = conn.scalar(
        insert(Incident)
        .values(
            group_key=group_key,
            title=title[:MAX_TITLE],
            status=IncidentStatus.TRIGGERED.value,
            severity=severity,
            service=service,
            labels=labels,
            created_at=now,
            updated_at=now,
            alert_count=0,
            truncated_alerts=truncated_alerts,
            escalation_level=0,
        )
        .returning(Incident.id)
    )
    assert incident_id is not None
    return incident_id


def stop_ladder(conn: Connection, incident_id: int) -> None:
    """Nobody is paged any more: clear `next_at` and bump the exactly-once token, so a job
    still queued for the old step is a no-op and the due ladders no longer include it."""
    conn.execute(
        update(EscalationState)
        .where(EscalationState.incident_id == incident_id)
        .values(next_at=None, step=EscalationState.step + 1)
    )


def _transition(
    conn: Connection,
    incident_id: int,
    *,
    only_from: list[IncidentStatus],
    values: dict[str, Any],
) -> bool:
    result = conn.execute(
        update(Incident)
        .where(Incident.id == incident_id, Incident.status.in_([s.value for s in only_from]))
        .values(**values, updated_at=utcnow())
    )
    return result.rowcount == 1


def _result(conn: Connection, incident_id: int, changed: bool) -> Transition:
    row = conn.execute(
        select(Incident.status, Incident.acknowledged_by).where(Incident.id == incident_id)
    ).first()
    if row is None:
        return Transition(False, None)
    return Transition(changed, IncidentStatus(row.status), row.acknowledged_by)
