"""Incident queries and state transitions.

Every function takes a connection so the caller decides the transaction: a transition and its
timeline event are always written together. Reads take an `AsyncConnection`; the transitions
people trigger (acknowledge, resolve, declare) and `record_event` take a blocking `Connection`
and run on the store writer, sharing its commits (store/writer.py). Transitions are conditional
UPDATEs, so a second click, a Slack retry or another replica doing the same thing changes
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from firebreak.store.models import (
    Alert,
    AnalysisRecord,
    EscalationState,
    Incident,
    SlackMessage,
    TimelineEvent,
)
from firebreak.store.schemas import (
    AlertOut,
    Analysis,
    EventType,
    IncidentOut,
    IncidentStatus,
    SlackRef,
    TimelineEventOut,
)
from firebreak.store.writer import Writer

CARD = "card"
MAX_ALERTS_SHOWN = 50


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Transition:
    """What a state change did: `changed` is False when it was already done (or impossible)."""

    changed: bool
    status: IncidentStatus | None  # None: no such incident
    reason: str = ""
    acknowledged_by: str | None = None


INSERT_EVENT = insert(TimelineEvent)  # built once: the hot paths add events by the thousand


def record_event(
    conn: Connection,
    incident_id: int,
    kind: EventType,
    actor: str,
    message: str,
    data: dict[str, Any] | None = None,
) -> None:
    """Append a timeline event (blocking connection: the store writer's work)."""
    conn.execute(
        INSERT_EVENT,
        {
            "incident_id": incident_id,
            "at": utcnow(),
            "type": kind.value,
            "actor": actor,
            "message": message,
            "data": data or {},
        },
    )


async def write_event(
    writer: Writer,
    incident_id: int,
    kind: EventType,
    actor: str,
    message: str,
    data: dict[str, Any] | None = None,
) -> None:
    """`record_event` on its own, through the store writer (committed when this returns)."""
    await writer.run(
        partial(
            record_event,
            incident_id=incident_id,
            kind=kind,
            actor=actor,
            message=message,
            data=data,
        )
    )


async def add_event(
    conn: AsyncConnection,
    incident_id: int,
    kind: EventType,
    actor: str,
    message: str,
    data: dict[str, Any] | None = None,
) -> None:
    """`record_event` in an async transaction."""
    await conn.run_sync(record_event, incident_id, kind, actor, message, data)


async def list_incidents(
    conn: AsyncConnection,
    status: IncidentStatus | None = None,
    limit: int = 100,
    *,
    service: str | None = None,
    severity: str | None = None,
    offset: int = 0,
) -> list[IncidentOut]:
    """Newest first; `service` and `severity` match exactly, `offset` pages."""
    query = select(Incident).order_by(Incident.id.desc()).limit(limit).offset(offset)
    if status is not None:
        query = query.where(Incident.status == status.value)
    if service is not None:
        query = query.where(Incident.service == service)
    if severity is not None:
        query = query.where(Incident.severity == severity)
    rows = (await conn.execute(query)).all()
    cards = await _card_refs(conn, [row.id for row in rows])
    analyses = await _latest_analyses(conn, [row.id for row in rows])
    return [_incident_out(row, cards.get(row.id), analyses.get(row.id)) for row in rows]


async def get_incident(
    conn: AsyncConnection, incident_id: int, *, with_alerts: bool = True
) -> IncidentOut | None:
    row = (await conn.execute(select(Incident).where(Incident.id == incident_id))).first()
    if row is None:
        return None
    cards = await _card_refs(conn, [incident_id])
    analyses = await _latest_analyses(conn, [incident_id])
    incident = _incident_out(row, cards.get(incident_id), analyses.get(incident_id))
    if with_alerts:
        alerts = await conn.execute(
            select(Alert)
            .where(Alert.incident_id == incident_id)
            .order_by(Alert.starts_at)
            .limit(MAX_ALERTS_SHOWN)
        )
        incident.alerts = [
            AlertOut(
                fingerprint=a.fingerprint,
                status=a.status,
                labels=a.labels,
                annotations=a.annotations,
                starts_at=a.starts_at,
                ends_at=a.ends_at,
                generator_url=a.generator_url,
            )
            for a in alerts
        ]
    return incident


async def timeline(conn: AsyncConnection, incident_id: int) -> list[TimelineEventOut] | None:
    if not await exists(conn, incident_id):
        return None
    rows = await conn.execute(
        select(TimelineEvent)
        .where(TimelineEvent.incident_id == incident_id)
        .order_by(TimelineEvent.at, TimelineEvent.id)
    )
    return [
        TimelineEventOut(at=r.at, type=r.type, actor=r.actor, message=r.message, data=r.data)
        for r in rows
    ]


async def exists(conn: AsyncConnection, incident_id: int) -> bool:
    found = await conn.scalar(select(Incident.id).where(Incident.id == incident_id))
    return found is not None


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
        _stop_escalation(conn, incident_id)
        record_event(conn, incident_id, EventType.ACKNOWLEDGED, actor, f"Acknowledged by {actor}")
    return _result(conn, incident_id, changed, "already acknowledged or resolved")


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
        _stop_escalation(conn, incident_id)
        record_event(conn, incident_id, EventType.RESOLVED, actor, f"Resolved by {actor}")
    return _result(conn, incident_id, changed, "already resolved")


def declare(
    conn: Connection,
    title: str,
    actor: str,
    *,
    severity: str = "unknown",
    service: str = "unknown",
) -> int:
    """A human-declared incident: no Alertmanager group, same life cycle."""
    now = utcnow()
    incident_id = conn.scalar(
        insert(Incident)
        .values(
            group_key=None,
            title=title[:300],
            status=IncidentStatus.TRIGGERED.value,
            severity=severity,
            service=service,
            labels={},
            created_at=now,
            updated_at=now,
            alert_count=0,
            truncated_alerts=0,
            escalation_level=0,
        )
        .returning(Incident.id)
    )
    assert incident_id is not None
    record_event(conn, incident_id, EventType.INCIDENT_CREATED, actor, f"Declared by {actor}")
    return incident_id


def save_analysis(
    conn: Connection,
    incident_id: int,
    analysis: Analysis,
    evidence: dict[str, Any],
    *,
    run_id: str | None = None,
) -> bool:
    """Store an analysis; False when this run's analysis was stored already (a resumed run)."""
    if run_id is not None and conn.scalar(
        select(AnalysisRecord.id).where(AnalysisRecord.run_id == run_id)
    ):
        return False
    conn.execute(
        insert(AnalysisRecord).values(
            run_id=run_id,
            incident_id=incident_id,
            created_at=analysis.created_at or utcnow(),
            execution_status=analysis.execution_status.value,
            confidence_score=analysis.confidence_score,
            body=analysis.model_dump(mode="json"),
            evidence=evidence,
        )
    )
    return True


async def latest_evidence(conn: AsyncConnection, incident_id: int) -> dict[str, Any] | None:
    """Everything the last investigation gathered (for thread Q&A), not only what it cited."""
    return await conn.scalar(
        select(AnalysisRecord.evidence)
        .where(AnalysisRecord.incident_id == incident_id)
        .order_by(AnalysisRecord.id.desc())
        .limit(1)
    )


def save_slack_message(
    conn: Connection, incident_id: int, purpose: str, channel: str, ts: str
) -> None:
    conn.execute(
        insert(SlackMessage).values(
            incident_id=incident_id, purpose=purpose, channel=channel, ts=ts, created_at=utcnow()
        )
    )


async def find_by_slack_thread(conn: AsyncConnection, channel: str, ts: str) -> int | None:
    return await conn.scalar(
        select(SlackMessage.incident_id)
        .where(SlackMessage.channel == channel, SlackMessage.ts == ts)
        .limit(1)
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


def _stop_escalation(conn: Connection, incident_id: int) -> None:
    conn.execute(
        update(EscalationState)
        .where(EscalationState.incident_id == incident_id)
        .values(next_at=None, step=EscalationState.step + 1)
    )


def _result(conn: Connection, incident_id: int, changed: bool, reason: str) -> Transition:
    row = conn.execute(
        select(Incident.status, Incident.acknowledged_by).where(Incident.id == incident_id)
    ).first()
    if row is None:
        return Transition(False, None, f"no incident #{incident_id}")
    return Transition(
        changed, IncidentStatus(row.status), "" if changed else reason, row.acknowledged_by
    )


async def _card_refs(conn: AsyncConnection, ids: list[int]) -> dict[int, Row[Any]]:
    if not ids:
        return {}
    rows = await conn.execute(
        select(SlackMessage.incident_id, SlackMessage.channel, SlackMessage.ts).where(
            SlackMessage.incident_id.in_(ids), SlackMessage.purpose == CARD
        )
    )
    return {row.incident_id: row for row in rows}


async def _latest_analyses(conn: AsyncConnection, ids: list[int]) -> dict[int, Analysis]:
    if not ids:
        return {}
    latest = (
        select(func.max(AnalysisRecord.id))
        .where(AnalysisRecord.incident_id.in_(ids))
        .group_by(AnalysisRecord.incident_id)
    )
    rows = await conn.execute(
        select(AnalysisRecord.incident_id, AnalysisRecord.body).where(AnalysisRecord.id.in_(latest))
    )
    return {row.incident_id: Analysis.model_validate(row.body) for row in rows}


def _incident_out(row: Row[Any], card: Row[Any] | None, analysis: Analysis | None) -> IncidentOut:
    return IncidentOut(
        id=row.id,
        title=row.title,
        status=IncidentStatus(row.status),
        severity=row.severity,
        service=row.service,
        labels=row.labels,
        group_key=row.group_key,
        created_at=row.created_at,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        resolved_at=row.resolved_at,
        alert_count=row.alert_count,
        truncated_alerts=row.truncated_alerts,
        escalation_level=row.escalation_level,
        slack=SlackRef(channel=card.channel, ts=card.ts) if card else SlackRef(),
        analysis=analysis,
    )
