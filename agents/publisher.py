"""Publishes the analysis: stored with the incident, on the timeline, and announced to the
thread (the Slack surface renders the RCA card from the stored analysis). Safe to re-run after
a crash: the store keeps one analysis per run, so a resumed run never stores or announces it
twice."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime as GraphRuntime
from sqlalchemy import Connection

from firebreak.agents.context import Deps
from firebreak.agents.evidence import gathered
from firebreak.agents.intake import FIREBREAK
from firebreak.agents.state import InvestigationState
from firebreak.incidents.events import Change, IncidentEvent
from firebreak.incidents.notices import RcaReady
from firebreak.store import incidents
from firebreak.store.schemas import Analysis, EventType, ExecutionStatus


async def publish(state: InvestigationState, runtime: GraphRuntime[Deps]) -> dict[str, Any]:
    deps = runtime.context
    incident_id = state.incident_id
    analysis = state.analysed()
    evidence = gathered(state).model_dump(mode="json")  # with what the follow-up calls found

    def store(conn: Connection) -> bool:
        stored = incidents.save_analysis(conn, incident_id, analysis, evidence, run_id=state.run_id)
        if stored:
            for kind, message, data in timeline_entries(analysis):
                incidents.record_event(conn, incident_id, kind, FIREBREAK, message, data)
        return stored

    if not await deps.writer.run(store):
        return {}
    deps.finished.labels(analysis.execution_status.value).inc()
    deps.notifier.tell(incident_id, RcaReady(run_id=state.run_id))
    deps.bus.publish(IncidentEvent(incident_id, Change.UPDATED))
    return {}


def timeline_entries(analysis: Analysis) -> list[tuple[EventType, str, dict[str, Any]]]:
    """A fallback records both facts: the LLM failed, and an offline RCA was made."""
    llm_errors = [a.error for a in analysis.attempts if not a.ok and a.error]
    summary: dict[str, Any] = {
        "execution_status": analysis.execution_status.value,
        "confidence_score": analysis.confidence_score,
        "provider": analysis.provider,
        "attempts": len(analysis.attempts),
        "prompt_tokens": analysis.prompt_tokens,
    }
    if analysis.set_aside is not None:
        summary["set_aside"] = analysis.set_aside.model_dump()
    if analysis.dissent is not None:
        summary["dissent"] = analysis.dissent
    entries: list[tuple[EventType, str, dict[str, Any]]] = []
    if analysis.execution_status is not ExecutionStatus.COMPLETED:
        entries.append(
            (
                EventType.AI_ANALYSIS_FAILED,
                "LLM analysis failed" + (f": {llm_errors[-1]}" if llm_errors else ""),
                {**summary, "errors": llm_errors[-5:]},
            )
        )
    if analysis.execution_status is not ExecutionStatus.FAILED:
        entries.append(
            (
                EventType.ROOT_CAUSE_GENERATED,
                f"Root cause ({analysis.confidence_score}% confidence): {analysis.root_cause}"[
                    :500
                ],
                summary,
            )
        )
    return entries
