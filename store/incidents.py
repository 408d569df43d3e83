"""Incident queries and the one way to write a timeline event.

Every function takes a connection so the caller decides the transaction. Reads take an
`AsyncConnection`; writes take a blocking `Connection` and run on the store writer, sharing its
commits (store/writer.py). The rules of the state transitions live in `incidents/transitions.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from firebreak.store import memory, verdicts
from firebreak.store.db import AnyRow, insert_rows
from firebreak.store.models import (
    Alert,
    AnalysisRecord,
    Incident,
    SlackMessage,
    TimelineEvent,
)
from firebreak.store.schemas import (
    AlertOut,
    Analysis,
    EventType,
    Feedback,
    IncidentOut,
    IncidentStatus,
    SlackRef,
    TimelineEventOut,
)

CARD = "card"
MAX_TITLE = 300
MAX_ALERTS_SHOWN = 50
READ_WITH_ANALYSIS = {"run_id", "feedback"}  # columns and rows of their own, not the body


def utcnow() -> datetime:
    return datetime.now(UTC)


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


def record_events(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Many timeline rows at once (each with `incident_id`, `at`, `type`, `actor`, `message`,
    `data`): ingest writes a storm's events in one statement."""
    insert_rows(conn, TimelineEvent.__table__, rows)


def record_run_event(
    conn: Connection,
    incident_id: int,
    kind: EventType,
    actor: str,
    message: str,
    data: dict[str, Any],
) -> bool:
    """`record_event` once per investigation run (`data["run_id"]`): a run resumed from its
    checkpoint re-runs the step that was cut short, which may already have recorded its event
    (the store failed after the event's commit, before the checkpoint's). False: already there."""
    recorded = conn.scalar(
        select(TimelineEvent.id)
        .where(
            TimelineEvent.incident_id == incident_id,
            TimelineEvent.type == kind.value,
            TimelineEvent.data["run_id"].as_string() == data["run_id"],
        )
        .limit(1)
    )
    if recorded is not None:
        return False
    record_event(conn, incident_id, kind, actor, message, data)
    return True


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
    ids = [row.id for row in rows]
    cards = await _card_refs(conn, ids)
    analyses = await _latest_analyses(conn, ids)
    related = await memory.related_ids(conn, ids)
    return [
        _incident_out(row, cards.get(row.id), analyses.get(row.id), related.get(row.id, []))
        for row in rows
    ]


async def get_incident(
    conn: AsyncConnection, incident_id: int, *, with_alerts: bool = True
) -> IncidentOut | None:
    row = (await conn.execute(select(Incident).where(Incident.id == incident_id))).first()
    if row is None:
        return None
    cards = await _card_refs(conn, [incident_id])
    analyses = await _latest_analyses(conn, [incident_id])
    related = await memory.related_ids(conn, [incident_id])
    incident = _incident_out(
        row, cards.get(incident_id), analyses.get(incident_id), related.get(incident_id, [])
    )
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


def change_status(
    conn: Connection,
    incident_id: int,
    *,
    only_from: list[IncidentStatus],
    values: dict[str, Any],
) -> bool:
    """Set `values` on the incident if its status is one of `only_from`; True when it was (the
    one caller that made the change)."""
    result = conn.execute(
        update(Incident)
        .where(Incident.id == incident_id, Incident.status.in_([s.value for s in only_from]))
        .values(**values, updated_at=utcnow())
    )
    return result.rowcount == 1


def status_of(conn: Connection, incident_id: int) -> tuple[IncidentStatus, str | None] | None:
    """The incident's status and who acknowledged it (None: no such incident)."""
    row = conn.execute(
        select(Incident.status, Incident.acknowledged_by).where(Incident.id == incident_id)
    ).first()
    return None if row is None else (IncidentStatus(row.status), row.acknowledged_by)


def incident_exists(conn: Connection, incident_id: int) -> bool:
    """`exists` for the writer's blocking connection."""
    return conn.scalar(select(Incident.id).where(Incident.id == incident_id)) is not None


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
            body=analysis.model_dump(mode="json", exclude=READ_WITH_ANALYSIS),
            evidence=evidence,
        )
    )
    conn.execute(  # the similarity search reads it from the incident (store/memory.py)
        update(Incident).where(Incident.id == incident_id).values(root_cause=analysis.root_cause)
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


async def analysis_of_run(conn: AsyncConnection, run_id: str) -> Analysis | None:
    """The analysis investigation run `run_id` stored, with the latest verdict on it (what
    its RCA message shows)."""
    row = (
        await conn.execute(
            select(AnalysisRecord.id, AnalysisRecord.body, AnalysisRecord.run_id).where(
                AnalysisRecord.run_id == run_id
            )
        )
    ).first()
    if row is None:
        return None
    judged = await verdicts.of_analyses(conn, [row.id])
    return analysis_out(row, judged.get(row.id))


def analysis_out(row: AnyRow, feedback: Feedback | None) -> Analysis:
    """A stored analysis (`body`, `run_id`) with the verdict read beside it."""
    return Analysis.model_validate(row.body).model_copy(
        update={"run_id": row.run_id, "feedback": feedback}
    )


async def slack_message(
    conn: AsyncConnection, incident_id: int, purpose: str
) -> tuple[str, str] | None:
    """(channel, ts) of the incident's message kept under `purpose` (the latest one)."""
    row = (
        await conn.execute(
            select(SlackMessage.channel, SlackMessage.ts)
            .where(SlackMessage.incident_id == incident_id, SlackMessage.purpose == purpose)
            .order_by(SlackMessage.id.desc())
            .limit(1)
        )
    ).first()
    return (row.channel, row.ts) if row else None


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


async def _card_refs(conn: AsyncConnection, ids: list[int]) -> dict[int, AnyRow]:
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
    rows = (
        await conn.execute(
            select(
                AnalysisRecord.id,
                AnalysisRecord.incident_id,
                AnalysisRecord.body,
                AnalysisRecord.run_id,
            ).where(AnalysisRecord.id.in_(latest))
        )
    ).all()
    judged = await verdicts.of_analyses(conn, [row.id for row in rows])
    return {row.incident_id: analysis_out(row, judged.get(row.id)) for row in rows}


def _incident_out(
    row: AnyRow, card: AnyRow | None, analysis: Analysis | None, related: list[int]
) -> IncidentOut:
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
        related=related,
    )
