"""Joins what the two agents found: ranked, de-duplicated, capped and redacted, so that what
follows (the LLM, the store, Slack) only ever sees the scrubbed version."""

from __future__ import annotations

from functools import partial
from typing import Any

from langgraph.runtime import Runtime as GraphRuntime

from firebreak.agents.context import Deps
from firebreak.agents.intake import FIREBREAK
from firebreak.agents.state import InvestigationState
from firebreak.store.incidents import record_event
from firebreak.store.schemas import EventType
from firebreak.tools.evidence import build_evidence
from firebreak.tools.models import AlertContext, Evidence, LogLine, MetricReading, SourceReport


async def join_evidence(state: InvestigationState, runtime: GraphRuntime[Deps]) -> dict[str, Any]:
    deps = runtime.context
    alert = AlertContext.model_validate(state["alert"])
    reports = [SourceReport.model_validate(r) for r in state.get("reports", [])]
    found = deps.redactor.redact_evidence(
        Evidence(
            logs=[LogLine.model_validate(line) for line in state.get("logs", [])],
            metrics=[MetricReading.model_validate(m) for m in state.get("metrics", [])],
            reports=reports,
        )
    )  # the one pass: everything after this (the LLM, the store, Slack) sees scrubbed text
    evidence = build_evidence(
        found.logs,
        found.metrics,
        found.reports,
        deps.settings.investigation.evidence_budget_chars,
        starts_at=alert.starts_at,
    )
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
    await deps.writer.run(
        partial(
            record_event,
            incident_id=state["incident_id"],
            kind=EventType.EVIDENCE_COLLECTED,
            actor=FIREBREAK,
            message=message,
            data=gathered,
        )
    )
    return {"evidence": evidence.model_dump(mode="json")}
