"""Joins what the two agents found: ranked, de-duplicated, capped and redacted, so that what
follows (the LLM, the store, Slack) only ever sees the scrubbed version."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime as GraphRuntime

from firebreak.agents.context import Deps
from firebreak.agents.intake import FIREBREAK
from firebreak.agents.state import InvestigationState
from firebreak.store import incidents
from firebreak.store.schemas import EventType
from firebreak.tools.evidence import build_evidence
from firebreak.tools.models import AlertContext, LogLine, MetricReading, SourceReport


async def join_evidence(state: InvestigationState, runtime: GraphRuntime[Deps]) -> dict[str, Any]:
    deps = runtime.context
    alert = AlertContext.model_validate(state["alert"])
    reports = [SourceReport.model_validate(r) for r in state.get("reports", [])]
    evidence = build_evidence(
        (LogLine.model_validate(line) for line in state.get("logs", [])),
        (MetricReading.model_validate(m) for m in state.get("metrics", [])),
        reports,
        deps.runtime.config.investigation.evidence_budget_chars,
        starts_at=alert.starts_at,
        redactor=deps.redactor,
    )
    evidence = deps.redactor.redact_evidence(evidence)
    gathered = {
        "log_lines": len(state.get("logs", [])),
        "metric_series": len(state.get("metrics", [])),
        "kept_log_lines": len(evidence.logs),
        "kept_metrics": len(evidence.metrics),
        "sources": [r.model_dump(mode="json") for r in evidence.reports],
    }
    failed = [r.source for r in evidence.reports if r.error]
    message = (
        f"Evidence collected: {len(evidence.logs)} log lines, {len(evidence.metrics)} metric "
        f"readings from {len(evidence.reports)} sources"
        + (f" ({', '.join(failed)} failed)" if failed else "")
    )
    await incidents.write_event(
        deps.runtime.writer,
        state["incident_id"],
        EventType.EVIDENCE_COLLECTED,
        FIREBREAK,
        message,
        gathered,
    )
    return {"evidence": evidence.model_dump(mode="json")}
