"""The latest verdict on analyses, read in batches.

A module of its own, below `store/incidents.py` and `store/memory.py` (which attach verdicts to
what they read) and `store/feedback.py` (which records them), so none of those imports another
in a circle. Only reads; `store/feedback.py` writes.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from firebreak.store.db import AnyRow
from firebreak.store.models import AnalysisFeedback, AnalysisRecord
from firebreak.store.schemas import Feedback, Verdict

__all__ = ["feedback_out", "of_analyses", "of_latest_analyses"]


def feedback_out(row: AnyRow | AnalysisFeedback) -> Feedback:
    return Feedback(
        verdict=Verdict(row.verdict), actual_cause=row.actual_cause, by=row.by, at=row.at
    )


async def of_analyses(conn: AsyncConnection, analysis_ids: Sequence[int]) -> dict[int, Feedback]:
    """The latest verdict on each of these analyses that has one, by analysis id."""
    if not analysis_ids:
        return {}
    latest = (
        select(func.max(AnalysisFeedback.id))
        .where(AnalysisFeedback.analysis_id.in_(list(analysis_ids)))
        .group_by(AnalysisFeedback.analysis_id)
    )
    rows = await conn.execute(select(AnalysisFeedback).where(AnalysisFeedback.id.in_(latest)))
    return {row.analysis_id: feedback_out(row) for row in rows}


async def of_latest_analyses(
    conn: AsyncConnection, incident_ids: Sequence[int]
) -> dict[int, Feedback]:
    """The verdict on each incident's latest analysis, by incident id. A verdict on an
    analysis that a newer one replaced is left out: it judged what the incident no longer
    says."""
    if not incident_ids:
        return {}
    latest = (
        select(func.max(AnalysisRecord.id))
        .where(AnalysisRecord.incident_id.in_(list(incident_ids)))
        .group_by(AnalysisRecord.incident_id)
    )
    rows = await conn.execute(
        select(AnalysisRecord.id, AnalysisRecord.incident_id).where(AnalysisRecord.id.in_(latest))
    )
    incident_of = {row.id: row.incident_id for row in rows}
    found = await of_analyses(conn, list(incident_of))
    return {incident_of[analysis_id]: verdict for analysis_id, verdict in found.items()}
