"""People's verdicts on analyses: recorded, read back, and turned into evaluation cases.

A verdict always judges one stored analysis (`analyses.id`, and its run when it has one).
Only the incident's latest analysis can be judged: a person who read an older one judged text
the incident no longer shows. Verdicts are only added, never changed; the latest row of an
analysis is its verdict. Recording takes the analysis row's lock on PostgreSQL, so two
replicas saving the same verdict at once still make one event (SQLite has one writer anyway).

`resolved_cases` is what an evaluation replays: resolved incidents whose analysis a person
judged, with everything that analysis was made from and what the right answer was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from firebreak.store import incidents, verdicts
from firebreak.store.models import AnalysisFeedback, AnalysisRecord, Incident
from firebreak.store.schemas import (
    AlertFacts,
    Analysis,
    EventType,
    Feedback,
    IncidentOut,
    IncidentStatus,
    Verdict,
)

__all__ = [
    "AnalysisRef",
    "FeedbackResult",
    "Recorded",
    "ResolvedCase",
    "latest_analysis",
    "latest_feedback",
    "record_feedback",
    "resolved_cases",
]

MESSAGE_CAUSE_MAX = 300  # of the actual cause, in the timeline message (`data` has it whole)


class FeedbackResult(StrEnum):
    RECORDED = "recorded"
    UNCHANGED = "unchanged"  # the same person said the same thing last: nothing added
    MISSING = "missing"  # no such incident
    NO_ANALYSIS = "no_analysis"  # nothing to judge yet
    SUPERSEDED = "superseded"  # the run judged is not the incident's latest analysis


@dataclass(frozen=True)
class AnalysisRef:
    """Which analysis is the incident's latest: its row and its run (None: stored without)."""

    id: int
    run_id: str | None


@dataclass(frozen=True)
class Recorded:
    """What recording a verdict did, and the analysis's verdict after it."""

    result: FeedbackResult
    analysis: AnalysisRef | None = None
    feedback: Feedback | None = None


def record_feedback(
    conn: Connection,
    incident_id: int,
    verdict: Verdict,
    by: str,
    actual_cause: str | None = None,
    *,
    run_id: str | None = None,
    now: datetime | None = None,
) -> Recorded:
    """Judge the incident's latest analysis (that of `run_id` only, when given) and add its
    `FEEDBACK` event, in the caller's transaction. The same verdict, cause and person as the
    analysis's latest verdict changes nothing."""
    if conn.scalar(select(Incident.id).where(Incident.id == incident_id)) is None:
        return Recorded(FeedbackResult.MISSING)
    analysis = _latest_locked(conn, incident_id)
    if analysis is None:
        return Recorded(FeedbackResult.NO_ANALYSIS)
    if run_id is not None and run_id != analysis.run_id:
        return Recorded(FeedbackResult.SUPERSEDED, analysis)
    before = _latest_row(conn, analysis.id)
    said = Feedback(verdict=verdict, actual_cause=actual_cause, by=by, at=now or incidents.utcnow())
    if before is not None and _same(verdicts.feedback_out(before), said):
        return Recorded(FeedbackResult.UNCHANGED, analysis, verdicts.feedback_out(before))
    conn.execute(
        insert(AnalysisFeedback).values(
            incident_id=incident_id,
            analysis_id=analysis.id,
            run_id=analysis.run_id,
            **said.model_dump(),
        )
    )
    data = {
        "verdict": verdict.value,
        "actual_cause": actual_cause,
        "run_id": analysis.run_id,
        "previous": before.verdict if before is not None else None,
    }
    incidents.record_event(conn, incident_id, EventType.FEEDBACK, by, feedback_message(said), data)
    return Recorded(FeedbackResult.RECORDED, analysis, said)


def feedback_message(feedback: Feedback) -> str:
    """The `FEEDBACK` event's message: "Analysis confirmed by alice", "… marked wrong by …"."""
    if feedback.verdict is Verdict.CORRECT:
        return f"Analysis confirmed by {feedback.by}"
    cause = " ".join((feedback.actual_cause or "").split())[:MESSAGE_CAUSE_MAX]
    return f"Analysis marked wrong by {feedback.by}; actual cause: {cause}"


def _same(before: Feedback, now: Feedback) -> bool:
    return (before.verdict, before.actual_cause, before.by) == (
        now.verdict,
        now.actual_cause,
        now.by,
    )


def _latest_locked(conn: Connection, incident_id: int) -> AnalysisRef | None:
    """The incident's latest analysis, its row locked until the transaction ends."""
    latest = select(func.max(AnalysisRecord.id)).where(AnalysisRecord.incident_id == incident_id)
    row = conn.execute(
        select(AnalysisRecord.id, AnalysisRecord.run_id)
        .where(AnalysisRecord.id == latest.scalar_subquery())
        .with_for_update()
    ).first()
    return AnalysisRef(row.id, row.run_id) if row is not None else None


def _latest_row(conn: Connection, analysis_id: int) -> Any:
    return conn.execute(
        select(AnalysisFeedback)
        .where(AnalysisFeedback.analysis_id == analysis_id)
        .order_by(AnalysisFeedback.id.desc())
        .limit(1)
    ).first()


async def latest_analysis(conn: AsyncConnection, incident_id: int) -> AnalysisRef | None:
    """The incident's latest analysis (what a verdict given now would judge)."""
    row = (
        await conn.execute(
            select(AnalysisRecord.id, AnalysisRecord.run_id)
            .where(AnalysisRecord.incident_id == incident_id)
            .order_by(AnalysisRecord.id.desc())
            .limit(1)
        )
    ).first()
    return AnalysisRef(row.id, row.run_id) if row is not None else None


async def latest_feedback(conn: AsyncConnection, incident_id: int) -> Feedback | None:
    """The verdict on the incident's latest analysis (None: not judged, or re-investigated
    since)."""
    return (await verdicts.of_latest_analyses(conn, [incident_id])).get(incident_id)


# ---------------------------------------------------------------------- evaluation cases


class ResolvedCase(BaseModel):
    """One judged analysis of a resolved incident, ready to replay: what it was made from
    (`alert`, `evidence`: everything the investigation gathered, `tools.models.Evidence` as
    JSON, `{}` for an analysis stored without it) and the right answer (`truth`: the person's
    actual cause when the verdict is `wrong`, the analysis's own root cause when `correct`)."""

    incident_id: int
    title: str
    service: str
    resolved_at: datetime
    alert: AlertFacts
    analysis: Analysis  # the judged one, with its verdict
    evidence: dict[str, Any]
    verdict: Verdict
    truth: str
    judged_by: str
    judged_at: datetime


async def resolved_cases(conn: AsyncConnection, limit: int = 100) -> list[ResolvedCase]:
    """Up to `limit` resolved incidents with a judged analysis, newest incident first; per
    incident, the analysis of its latest verdict."""
    latest = select(func.max(AnalysisFeedback.id)).group_by(AnalysisFeedback.incident_id)
    rows = (
        await conn.execute(
            select(AnalysisFeedback, AnalysisRecord.body, AnalysisRecord.evidence)
            .join(AnalysisRecord, AnalysisRecord.id == AnalysisFeedback.analysis_id)
            .join(Incident, Incident.id == AnalysisFeedback.incident_id)
            .where(
                AnalysisFeedback.id.in_(latest), Incident.status == IncidentStatus.RESOLVED.value
            )
            .order_by(AnalysisFeedback.incident_id.desc())
            .limit(limit)
        )
    ).all()
    cases = []
    for row in rows:
        incident = await incidents.get_incident(conn, row.incident_id)
        if incident is not None:
            cases.append(_case(row, incident))
    return cases


def _case(row: Any, incident: IncidentOut) -> ResolvedCase:
    feedback = verdicts.feedback_out(row)
    analysis = Analysis.model_validate(row.body).model_copy(
        update={"run_id": row.run_id, "feedback": feedback}
    )
    wrong = feedback.verdict is Verdict.WRONG
    return ResolvedCase(
        incident_id=incident.id,
        title=incident.title,
        service=incident.service,
        resolved_at=incident.resolved_at or feedback.at,
        alert=incident.alert_facts(),
        analysis=analysis,
        evidence=row.evidence or {},
        verdict=feedback.verdict,
        truth=(feedback.actual_cause or "") if wrong else analysis.root_cause,
        judged_by=feedback.by,
        judged_at=feedback.at,
    )
