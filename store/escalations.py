"""Escalation queries: ladders (`escalations`) and reminders (`incident_reminders`).

Every state change here is a conditional UPDATE on an exactly-once token (`step` for ladders,
`sent` for reminders): it changes one row only if nobody did that step
before. The caller writes the timeline event in the same transaction and does the step's side
effects (Slack, running the action) only when the UPDATE changed a row. Under PostgreSQL's
READ COMMITTED a second replica racing on the same row waits for the first to commit, then
re-checks the WHERE against the new row and changes nothing; SQLite serialises writers.

The caller owns the transaction. Steps take a blocking `Connection` and run on the store writer
(group commit; see store/writer.py); the reconciliation readers serve the scheduler in a
worker thread; `last_page` (what the card says about paging) reads on an `AsyncConnection`.
When a step is due is the escalation room's rule (escalation/due.py); these only read and
write the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, exists, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from firebreak.store.db import conflict_insert
from firebreak.store.models import (
    EscalationState,
    Incident,
    IncidentReminder,
    TimelineEvent,
)
from firebreak.store.schemas import EventType, IncidentStatus

TRIGGERED = IncidentStatus.TRIGGERED.value
ACKNOWLEDGED = IncidentStatus.ACKNOWLEDGED.value
RESOLVED = IncidentStatus.RESOLVED.value


@dataclass(frozen=True)
class Ladder:
    """An incident's ladder state joined with what the flows need from the incident."""

    incident_id: int
    status: str
    labels: dict[str, str]
    severity: str
    service: str
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    title: str
    policy: dict[str, Any] | None  # None: no ladder row yet
    level: int = 0
    cycle: int = 0
    next_at: datetime | None = None
    step: int = 0


# The hot statements (every step runs them) are built once: building a statement per call cost
# more than running it (measured with py-spy on bench/escalation_reconcile.py).
_LADDER = (
    select(
        Incident.id,
        Incident.status,
        Incident.labels,
        Incident.severity,
        Incident.service,
        Incident.acknowledged_at,
        Incident.acknowledged_by,
        Incident.title,
        EscalationState.policy,
        EscalationState.level,
        EscalationState.cycle,
        EscalationState.next_at,
        EscalationState.step,
    )
    .select_from(Incident)
    .outerjoin(EscalationState, EscalationState.incident_id == Incident.id)
    .where(Incident.id == bindparam("incident_id"))
)


def _claim_statement(statuses: list[str], *, running: bool) -> Any:
    conditions = [
        EscalationState.incident_id == bindparam("ladder_id"),
        EscalationState.step == bindparam("expected_step"),
        exists(
            select(literal(1)).where(
                Incident.id == bindparam("ladder_id"), Incident.status.in_(statuses)
            )
        ),
    ]
    if running:
        conditions.append(EscalationState.next_at.is_not(None))
    return (
        update(EscalationState)
        .where(*conditions)
        .values(
            level=bindparam("new_level"),
            cycle=bindparam("new_cycle"),
            next_at=bindparam("new_next_at"),
            step=bindparam("expected_step") + 1,
        )
    )


_CLAIM_TIMER_STEP = _claim_statement([TRIGGERED], running=True)
_CLAIM_MANUAL_STEP = _claim_statement([TRIGGERED, ACKNOWLEDGED], running=False)
_SET_LEVEL = (
    update(Incident)
    .where(Incident.id == bindparam("incident_id"))
    .values(escalation_level=bindparam("level"), updated_at=bindparam("now"))
)


def ladder(conn: Connection, incident_id: int) -> Ladder | None:
    """The incident and its ladder (policy None when it has none); None: no such incident."""
    row = conn.execute(_LADDER, {"incident_id": incident_id}).first()
    if row is None:
        return None
    has_ladder = row.step is not None
    return Ladder(
        incident_id=row.id,
        status=row.status,
        labels=row.labels or {},
        severity=row.severity,
        service=row.service,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        title=row.title,
        policy=row.policy if has_ladder else None,
        level=row.level or 0,
        cycle=row.cycle or 0,
        next_at=row.next_at,
        step=row.step or 0,
    )


def create_ladder(
    conn: Connection, incident_id: int, policy: dict[str, Any], next_at: datetime | None
) -> bool:
    """Insert the ladder row unless one exists (another replica, a duplicate event)."""
    statement = (
        conflict_insert(conn, EscalationState)
        .values(incident_id=incident_id, policy=policy, level=0, cycle=0, next_at=next_at, step=0)
        .on_conflict_do_nothing(index_elements=["incident_id"])
    )
    return conn.execute(statement).rowcount == 1


def restart_ladder(
    conn: Connection,
    incident_id: int,
    expected_step: int,
    policy: dict[str, Any],
    next_at: datetime | None,
) -> bool:
    """A reopened incident starts its ladder again, with the policy matching it now."""
    result = conn.execute(
        update(EscalationState)
        .where(
            EscalationState.incident_id == incident_id,
            EscalationState.step == expected_step,
            EscalationState.next_at.is_(None),
        )
        .values(policy=policy, level=0, cycle=0, next_at=next_at, step=expected_step + 1)
    )
    return result.rowcount == 1


def reopened_since_last_page(conn: Connection, incident_id: int) -> bool:
    """Whether a REOPENED event is newer than the last ESCALATED one (the ladder ended before)."""

    def last(kind: EventType) -> Any:
        return (
            select(func.max(TimelineEvent.id))
            .where(TimelineEvent.incident_id == incident_id, TimelineEvent.type == kind.value)
            .scalar_subquery()
        )

    row = (
        conn.execute(
            select(
                last(EventType.REOPENED).label("reopened"), last(EventType.ESCALATED).label("paged")
            )
        )
    ).first()
    assert row is not None
    return row.reopened is not None and (row.paged is None or row.reopened > row.paged)


def claim_step(
    conn: Connection,
    incident_id: int,
    step: int,
    *,
    level: int,
    cycle: int,
    next_at: datetime | None,
    scheduled: bool,
) -> bool:
    """Record that step `step` pages (level, cycle): True only for the one caller that does it.

    `scheduled` steps (the timer) also need the ladder still running and the incident still
    triggered; a manual escalation only needs the incident not resolved."""
    result = conn.execute(
        _CLAIM_TIMER_STEP if scheduled else _CLAIM_MANUAL_STEP,
        {
            "ladder_id": incident_id,
            "expected_step": step,
            "new_level": level,
            "new_cycle": cycle,
            "new_next_at": next_at,
        },
    )
    return result.rowcount == 1


def set_incident_level(conn: Connection, incident_id: int, level: int, now: datetime) -> None:
    conn.execute(_SET_LEVEL, {"incident_id": incident_id, "level": level, "now": now})


def claim_reminder(conn: Connection, incident_id: int, sent: int, now: datetime) -> bool:
    """Record reminder number `sent + 1` for an acknowledged incident, once."""
    conn.execute(
        conflict_insert(conn, IncidentReminder)
        .values(incident_id=incident_id, sent=0, last_at=None)
        .on_conflict_do_nothing(index_elements=["incident_id"])
    )
    result = conn.execute(
        update(IncidentReminder)
        .where(
            IncidentReminder.incident_id == incident_id,
            IncidentReminder.sent == sent,
            exists(
                select(literal(1)).where(
                    Incident.id == incident_id, Incident.status == ACKNOWLEDGED
                )
            ),
        )
        .values(sent=sent + 1, last_at=now)
    )
    return result.rowcount == 1


def reminder_state(conn: Connection, incident_id: int) -> tuple[int, datetime | None]:
    row = (
        conn.execute(
            select(IncidentReminder.sent, IncidentReminder.last_at).where(
                IncidentReminder.incident_id == incident_id
            )
        )
    ).first()
    return (row.sent, row.last_at) if row else (0, None)


# ---------------------------------------------------------------------- the card (async)


@dataclass(frozen=True)
class LastPage:
    """The latest escalation page: `targets` paged, `reasons` why (target -> "on call for
    NAME"), `unstaffed` what found nobody ("nobody is on call for NAME")."""

    level: int
    targets: list[str]
    reasons: dict[str, str]
    unstaffed: list[str]
    policy: str | None = None  # the policy's name; None on pages recorded before it was kept
    levels: int | None = None  # how many levels that policy has


async def last_page(conn: AsyncConnection, incident_id: int) -> LastPage | None:
    data = await conn.scalar(
        select(TimelineEvent.data)
        .where(
            TimelineEvent.incident_id == incident_id,
            TimelineEvent.type == EventType.ESCALATED.value,
        )
        .order_by(TimelineEvent.id.desc())
        .limit(1)
    )
    if not isinstance(data, dict):
        return None
    return LastPage(
        level=int(data.get("level") or 0),
        targets=[str(t) for t in data.get("targets") or []],
        reasons={str(k): str(v) for k, v in (data.get("reasons") or {}).items()},
        unstaffed=[str(u) for u in data.get("unstaffed") or []],
        policy=str(data["policy"]) if data.get("policy") else None,
        levels=int(data["levels"]) if data.get("levels") else None,
    )


# ---------------------------------------------------------------------- reconciliation (sync)


def running_ladders(conn: Connection) -> list[tuple[int, int, datetime]]:
    """(incident, step, next_at) of every ladder still running."""
    rows = conn.execute(
        select(EscalationState.incident_id, EscalationState.step, EscalationState.next_at).where(
            EscalationState.next_at.is_not(None)
        )
    )
    return [(r.incident_id, r.step, r.next_at) for r in rows]


def due_steps(conn: Connection, now: datetime, limit: int) -> list[tuple[int, int]]:
    """(incident, step) of the running ladders whose next step is due by `now`, oldest first."""
    rows = conn.execute(
        select(EscalationState.incident_id, EscalationState.step)
        .where(EscalationState.next_at.is_not(None), EscalationState.next_at <= now)
        .order_by(EscalationState.next_at)
        .limit(limit)
    )
    return [(r.incident_id, r.step) for r in rows]


@dataclass(frozen=True)
class ReminderState:
    """An acknowledged incident's reminders: how many were sent, the last one when."""

    incident_id: int
    acknowledged_at: datetime
    sent: int
    last_at: datetime | None


def acknowledged_reminders(conn: Connection) -> list[ReminderState]:
    """The reminder state of every acknowledged incident."""
    rows = conn.execute(
        select(
            Incident.id,
            Incident.acknowledged_at,
            IncidentReminder.sent,
            IncidentReminder.last_at,
        )
        .select_from(Incident)
        .outerjoin(IncidentReminder, IncidentReminder.incident_id == Incident.id)
        .where(Incident.status == ACKNOWLEDGED, Incident.acknowledged_at.is_not(None))
    )
    return [ReminderState(r.id, r.acknowledged_at, r.sent or 0, r.last_at) for r in rows]


def unstarted_incidents(conn: Connection, limit: int = 200) -> list[int]:
    """Triggered incidents with no ladder row: their OPENED event was lost (crash in between)."""
    rows = conn.execute(
        select(Incident.id)
        .outerjoin(EscalationState, EscalationState.incident_id == Incident.id)
        .where(Incident.status == TRIGGERED, EscalationState.incident_id.is_(None))
        .order_by(Incident.id)
        .limit(limit)
    )
    return [r.id for r in rows]


def open_ladders(conn: Connection) -> list[tuple[int, str, str, Any]]:
    """(id, title, status, snapshotted policy) of every open incident with a ladder, oldest
    first."""
    rows = conn.execute(
        select(Incident.id, Incident.title, Incident.status, EscalationState.policy)
        .join(EscalationState, EscalationState.incident_id == Incident.id)
        .where(Incident.status != RESOLVED)
        .order_by(Incident.id)
    )
    return [(row.id, row.title, row.status, row.policy) for row in rows]


def stop_ladder(conn: Connection, incident_id: int) -> None:
    """Nobody is paged any more: clear `next_at` and bump the exactly-once token, so a job
    still queued for the old step is a no-op and the due ladders no longer include it."""
    conn.execute(
        update(EscalationState)
        .where(EscalationState.incident_id == incident_id)
        .values(next_at=None, step=EscalationState.step + 1)
    )
