"""Verdicts on analyses in the store, on SQLite and PostgreSQL: recorded with their timeline
event, read back with the analysis, only on the latest analysis, idempotent for a repeat; the
evaluation cases; the history refs that carry them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from firebreak.agents.intake import alert_context
from firebreak.incidents import transitions
from firebreak.incidents.ingest import ingest
from firebreak.store import feedback, incidents, memory
from firebreak.store.db import create_engine
from firebreak.store.feedback import FeedbackResult
from firebreak.store.models import AnalysisFeedback
from firebreak.store.payloads import AlertmanagerPayload
from firebreak.store.schemas import EventType, Verdict
from firebreak.store.writer import Writer
from firebreak.tools.models import Evidence, LogLine, MetricReading
from tests.support.analyses import make_analysis
from tests.support.payloads import alert, group

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


@pytest.fixture
async def engine(writer: Writer, store_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(store_url)
    yield engine
    await engine.dispose()


async def open_incident(writer: Writer, key: str, *, service: str = "checkout") -> int:
    alerts = [
        alert(f"{key}-b", service=service, starts_at=T0 + timedelta(seconds=30)),
        alert(f"{key}-a", service=service, starts_at=T0),
    ]
    payload = AlertmanagerPayload.model_validate(group(key, alerts))
    outcome = await writer.run(partial(ingest, payload=payload, now=T0, reopen_window_s=0))
    assert outcome.incident_id is not None
    return outcome.incident_id


def gathered(text: str) -> dict[str, Any]:
    """Everything an investigation gathers (tools.models.Evidence), as stored."""
    return Evidence(
        logs=[LogLine(ref="L1", source="loki", timestamp=T0, text=text)],
        metrics=[MetricReading(ref="M1", source="prom", query="up", current=0, baseline=1)],
    ).model_dump(mode="json")


async def analyse(
    writer: Writer, incident_id: int, run_id: str | None, root_cause: str
) -> dict[str, Any]:
    evidence = gathered(f"ERROR while {root_cause}")
    analysis = make_analysis(root_cause=root_cause, created_at=T0 + timedelta(minutes=1))
    stored = await writer.run(
        partial(
            incidents.save_analysis,
            incident_id=incident_id,
            analysis=analysis,
            evidence=evidence,
            run_id=run_id,
        )
    )
    assert stored
    return evidence


async def judge(
    writer: Writer,
    incident_id: int,
    verdict: Verdict,
    by: str = "U0ALICE",
    cause: str | None = None,
    run_id: str | None = None,
) -> feedback.Recorded:
    return await writer.run(
        partial(
            feedback.record_feedback,
            incident_id=incident_id,
            verdict=verdict,
            by=by,
            actual_cause=cause,
            run_id=run_id,
        )
    )


async def feedback_events(engine: AsyncEngine, incident_id: int) -> list[Any]:
    async with engine.connect() as conn:
        events = await incidents.timeline(conn, incident_id)
    assert events is not None
    return [e for e in events if e.type == EventType.FEEDBACK]


async def test_a_verdict_is_stored_with_its_event_and_read_with_the_analysis(
    writer: Writer, engine: AsyncEngine
) -> None:
    incident_id = await open_incident(writer, "g1")
    await analyse(writer, incident_id, "inv-1-aaaa", "The v2.4.1 deploy broke checkout")
    async with engine.connect() as conn:
        before = await incidents.get_incident(conn, incident_id)
    assert before is not None and before.analysis is not None
    assert before.analysis.run_id == "inv-1-aaaa" and before.analysis.feedback is None

    done = await judge(writer, incident_id, Verdict.WRONG, cause="The DB pool was too small")

    assert done.result is FeedbackResult.RECORDED
    assert done.analysis is not None and done.analysis.run_id == "inv-1-aaaa"
    async with engine.connect() as conn:
        incident = await incidents.get_incident(conn, incident_id)
        listed = await incidents.list_incidents(conn)
        of_run = await incidents.analysis_of_run(conn, "inv-1-aaaa")
        latest = await feedback.latest_feedback(conn, incident_id)
    assert incident is not None and incident.analysis is not None
    said = incident.analysis.feedback
    assert said is not None and said == latest
    assert (said.verdict, said.actual_cause, said.by) == (
        Verdict.WRONG,
        "The DB pool was too small",
        "U0ALICE",
    )
    assert said.at.tzinfo is not None
    assert listed[0].analysis is not None and listed[0].analysis.feedback == said
    assert of_run is not None and of_run.feedback == said and of_run.run_id == "inv-1-aaaa"
    [event] = await feedback_events(engine, incident_id)
    assert event.actor == "U0ALICE"
    assert event.message == (
        "Analysis marked wrong by U0ALICE; actual cause: The DB pool was too small"
    )
    assert event.data == {
        "verdict": "wrong",
        "actual_cause": "The DB pool was too small",
        "run_id": "inv-1-aaaa",
        "previous": None,
    }


async def test_a_repeat_changes_nothing_and_a_changed_verdict_is_the_latest(
    writer: Writer, engine: AsyncEngine
) -> None:
    incident_id = await open_incident(writer, "g1")
    await analyse(writer, incident_id, None, "A bad deploy")  # no run: the API may judge it
    first = await judge(writer, incident_id, Verdict.CORRECT)
    again = await judge(writer, incident_id, Verdict.CORRECT)
    assert (first.result, again.result) == (FeedbackResult.RECORDED, FeedbackResult.UNCHANGED)
    assert again.feedback == first.feedback  # the verdict as first given, its time included
    assert len(await feedback_events(engine, incident_id)) == 1

    changed = await judge(writer, incident_id, Verdict.WRONG, cause="Disk full")
    recause = await judge(writer, incident_id, Verdict.WRONG, cause="Disk full on db-2")
    other = await judge(writer, incident_id, Verdict.WRONG, by="U0BOB", cause="Disk full on db-2")
    assert [d.result for d in (changed, recause, other)] == [FeedbackResult.RECORDED] * 3

    events = await feedback_events(engine, incident_id)
    assert [(e.actor, e.data["verdict"], e.data["previous"]) for e in events] == [
        ("U0ALICE", "correct", None),
        ("U0ALICE", "wrong", "correct"),
        ("U0ALICE", "wrong", "wrong"),
        ("U0BOB", "wrong", "wrong"),
    ]
    async with engine.connect() as conn:
        latest = await feedback.latest_feedback(conn, incident_id)
    assert latest is not None and (latest.by, latest.actual_cause) == ("U0BOB", "Disk full on db-2")


async def test_only_the_latest_analysis_can_be_judged(writer: Writer, engine: AsyncEngine) -> None:
    incident_id = await open_incident(writer, "g1")
    assert (await judge(writer, 999_999, Verdict.CORRECT)).result is FeedbackResult.MISSING
    none_yet = await judge(writer, incident_id, Verdict.CORRECT)
    assert none_yet.result is FeedbackResult.NO_ANALYSIS

    await analyse(writer, incident_id, "inv-1-old", "A bad deploy")
    await judge(writer, incident_id, Verdict.CORRECT, run_id="inv-1-old")
    await analyse(writer, incident_id, "inv-1-new", "The DB pool")  # re-investigated
    async with engine.connect() as conn:
        incident = await incidents.get_incident(conn, incident_id)
        assert await feedback.latest_feedback(conn, incident_id) is None  # judged the old one
        ref = await feedback.latest_analysis(conn, incident_id)
    assert incident is not None and incident.analysis is not None
    assert incident.analysis.run_id == "inv-1-new" and incident.analysis.feedback is None
    assert ref is not None and ref.run_id == "inv-1-new"

    stale = await judge(writer, incident_id, Verdict.WRONG, cause="x", run_id="inv-1-old")
    unknown = await judge(writer, incident_id, Verdict.CORRECT, run_id="inv-1-nope")
    assert stale.result is unknown.result is FeedbackResult.SUPERSEDED
    async with engine.connect() as conn:
        rows = await conn.scalar(select(func.count()).select_from(AnalysisFeedback))
    assert rows == 1 and len(await feedback_events(engine, incident_id)) == 1

    latest = await judge(writer, incident_id, Verdict.CORRECT, run_id="inv-1-new")
    assert latest.result is FeedbackResult.RECORDED


async def test_resolved_cases_bring_evidence_alert_and_the_right_answer(
    writer: Writer, engine: AsyncEngine
) -> None:
    wrong = await open_incident(writer, "wrong")
    wrong_evidence = await analyse(writer, wrong, "inv-w", "A bad deploy")
    await judge(writer, wrong, Verdict.CORRECT)
    await judge(writer, wrong, Verdict.WRONG, by="U0BOB", cause="The DB pool was too small")
    right = await open_incident(writer, "right", service="payments")
    await analyse(writer, right, None, "Certificate expired")
    await judge(writer, right, Verdict.CORRECT, cause="and nobody renewed it")
    still_open = await open_incident(writer, "open")
    await analyse(writer, still_open, "inv-o", "Memory leak")
    await judge(writer, still_open, Verdict.CORRECT)
    unjudged = await open_incident(writer, "unjudged")
    await analyse(writer, unjudged, "inv-u", "GC pauses")
    for incident_id in (wrong, right, unjudged):
        await writer.run(partial(transitions.resolve, incident_id=incident_id, actor="U0ALICE"))

    async with engine.connect() as conn:
        cases = await feedback.resolved_cases(conn)
        newest = await feedback.resolved_cases(conn, limit=1)
        incident = await incidents.get_incident(conn, wrong)

    assert [c.incident_id for c in cases] == [right, wrong]
    assert [c.incident_id for c in newest] == [right]
    by_id = {c.incident_id: c for c in cases}
    case = by_id[wrong]
    assert (case.verdict, case.truth, case.judged_by) == (
        Verdict.WRONG,
        "The DB pool was too small",
        "U0BOB",
    )
    assert case.analysis.root_cause == "A bad deploy" and case.analysis.run_id == "inv-w"
    assert case.analysis.feedback is not None and case.analysis.feedback.by == "U0BOB"
    assert case.evidence == wrong_evidence
    Evidence.model_validate(case.evidence)  # what a replay feeds the reasoning agent
    assert incident is not None
    assert case.alert.model_dump() == alert_context(incident).model_dump()
    assert case.alert.starts_at == T0 and case.alert.labels["alertname"] == "HighErrorRate"
    assert case.title == incident.title and case.resolved_at == incident.resolved_at
    confirmed = by_id[right]
    assert (confirmed.verdict, confirmed.truth) == (Verdict.CORRECT, "Certificate expired")
    assert confirmed.service == "payments"


async def test_history_refs_say_what_people_said(writer: Writer, engine: AsyncEngine) -> None:
    """Earlier incidents of the same alert and service: one confirmed, one corrected (its
    wrong analysis replaced by the person's cause), one never judged."""
    earlier = {}
    for key, cause in (("c", "A bad deploy"), ("w", "Cache flushed"), ("n", "GC pauses")):
        earlier[key] = await open_incident(writer, key)
        await analyse(writer, earlier[key], f"inv-{key}", cause)
        await writer.run(partial(transitions.resolve, incident_id=earlier[key], actor="U0BOB"))
    await judge(writer, earlier["c"], Verdict.CORRECT)
    await judge(writer, earlier["w"], Verdict.WRONG, cause="The DB pool was too small")
    now = await open_incident(writer, "now")

    async with engine.connect() as conn:
        refs = {ref.incident_id: ref for ref in await memory.history(conn, now)}

    assert set(refs) == set(earlier.values())
    confirmed, corrected, plain = (refs[earlier[k]] for k in ("c", "w", "n"))
    assert (confirmed.confirmed, confirmed.root_cause) == (True, "A bad deploy")
    assert (corrected.confirmed, corrected.root_cause) == (False, "The DB pool was too small")
    assert (plain.confirmed, plain.root_cause) == (None, "GC pauses")
