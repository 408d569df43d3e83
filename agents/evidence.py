"""Joins what the three agents found: cut, redacted, ranked, de-duplicated and capped, so that
what follows (the LLM, the store, Slack) only ever sees the scrubbed version. Each item is cut
to a bound (marked "…") before anything scans it, and the work runs in a thread.

The character budget is shared: the cluster findings get at most a quarter of it (the best of
them, by the same scores as log lines), the logs and metrics the rest. With an LLM, the
evidence is then packed into the model's token budget (agents/budget.py: the RCA prompt as the
follow-up loop sends it, with room for the tool specs and some results), so the prompt fits
the model's context; what a lead cites stays. `gathered()` is the evidence as it stands later
in the run: the joined evidence plus what the follow-up tool calls found (already redacted,
capped and numbered by the toolbox).
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from langgraph.runtime import Runtime as GraphRuntime

from firebreak.agents.budget import Fitted, fit_evidence
from firebreak.agents.context import Deps
from firebreak.agents.followup import offered_tools
from firebreak.agents.intake import FIREBREAK
from firebreak.agents.leads import find
from firebreak.agents.rca_prompt import build_rca_messages, safe_alert
from firebreak.agents.state import InvestigationState
from firebreak.store.incidents import record_run_event
from firebreak.store.schemas import EventType
from firebreak.tools.evidence import build_evidence, format_finding
from firebreak.tools.files import MAX_LINE_CHARS
from firebreak.tools.kube_objects import select_findings
from firebreak.tools.llm import estimate_tokens
from firebreak.tools.models import AlertContext, Evidence, KubeFinding, LogLine, MetricReading
from firebreak.tools.redact import Redactor
from firebreak.tools.text import cut

_Item = TypeVar("_Item", LogLine, KubeFinding)

KUBERNETES_SHARE = 4  # the findings get at most 1/4 of the evidence budget
MAX_ITEM_CHARS = MAX_LINE_CHARS  # what a source may hand in per line; evidence shows less
RESULTS_RESERVE_TOKENS = 1000  # room kept in the context for the follow-up calls' results


async def join_evidence(state: InvestigationState, runtime: GraphRuntime[Deps]) -> dict[str, Any]:
    deps = runtime.context
    alert = state.opened()
    budget = deps.settings.investigation.evidence_budget_chars
    # CPU work over text from outside, off the event loop; each regex call in it scans one
    # cut item, so the thread gives the GIL back between calls and the loop keeps serving.
    evidence = await asyncio.to_thread(_joined, state, deps.redactor, budget, alert.starts_at)
    fitted = await _fit_for_the_model(state, deps, alert, evidence)
    if fitted is not None:
        evidence = fitted.evidence
    gathered_counts = {
        "log_lines": len(state.logs),
        "metric_series": len(state.metrics),
        "kubernetes_findings": len(state.kubernetes),
        "kept_log_lines": len(evidence.logs),
        "kept_metrics": len(evidence.metrics),
        "kept_kubernetes": len(evidence.kubernetes),
        "sources": [r.model_dump(mode="json") for r in evidence.reports],
    }
    if fitted is not None:
        gathered_counts |= {
            "prompt_tokens": fitted.tokens,
            "prompt_budget_tokens": fitted.budget,
            "left_out_for_budget": fitted.dropped,
        }
    failed = [r.source for r in evidence.reports if r.error]
    clusters = f", {len(evidence.kubernetes)} cluster findings" if state.kubernetes else ""
    message = (
        f"Evidence collected: {len(evidence.logs)} log lines, {len(evidence.metrics)} metric "
        f"readings{clusters} from {len(evidence.reports)} sources"
        + (f" ({', '.join(failed)} failed)" if failed else "")
    )
    await deps.writer.run(  # once per run, also when a resumed run joins again
        partial(
            record_run_event,
            incident_id=state.incident_id,
            kind=EventType.EVIDENCE_COLLECTED,
            actor=FIREBREAK,
            message=message,
            data={**gathered_counts, "run_id": state.run_id},
        )
    )
    return {"evidence": evidence}


def _joined(
    state: InvestigationState, redactor: Redactor, budget: int, starts_at: datetime
) -> Evidence:
    """What the sources found, each item cut to `MAX_ITEM_CHARS` (marked) and then scrubbed:
    the one pass, everything after it (the LLM, the store, Slack) sees scrubbed text. Then
    ranked, de-duplicated and capped."""
    found = redactor.redact_evidence(
        Evidence(
            logs=[_cut_line(line) for line in state.logs],
            metrics=state.metrics,
            reports=state.reports,
            kubernetes=[_cut_line(finding) for finding in state.kubernetes],
        )
    )
    kept = select_findings(found.kubernetes, budget // KUBERNETES_SHARE)
    spent = sum(len(format_finding(f)) + 1 for f in kept)
    return build_evidence(
        found.logs, found.metrics, found.reports, budget - spent, starts_at=starts_at
    ).model_copy(update={"kubernetes": kept})


def _cut_line(item: _Item) -> _Item:
    if len(item.text) <= MAX_ITEM_CHARS:
        return item
    return item.model_copy(update={"text": cut(item.text, MAX_ITEM_CHARS)})


async def _fit_for_the_model(
    state: InvestigationState, deps: Deps, alert: AlertContext, evidence: Evidence
) -> Fitted | None:
    """The evidence packed into the LLM's token budget, or None without an LLM."""
    gateway = deps.gateway
    if gateway is None or not gateway.enabled:
        return None
    settings = deps.settings
    tools = offered_tools(settings) if settings.investigation.max_tool_calls else []
    shown = safe_alert(alert, deps.redactor)
    reserve = estimate_tokens(json.dumps(tools)) + (RESULTS_RESERVE_TOKENS if tools else 0)

    def render(candidate: Evidence) -> list[dict[str, str]]:
        return build_rca_messages(
            shown,
            candidate,
            settings.actions,
            deps.redactor,
            tools=settings.investigation.max_tool_calls if tools else 0,
            history=state.history,
        )

    keep = {ref for lead in find(shown, evidence).leads() for ref in lead.refs}
    return await fit_evidence(evidence, render, gateway, reserve=reserve, keep=keep)


def gathered(state: InvestigationState) -> Evidence:
    """The joined evidence plus the items the follow-up calls found, in call order."""
    evidence = state.evidence
    logs, metrics = list(evidence.logs), list(evidence.metrics)
    findings: list[KubeFinding] = []
    for call in state.calls:
        for item in call.items:
            if isinstance(item, LogLine):
                logs.append(item)
            elif isinstance(item, MetricReading):
                metrics.append(item)
            else:
                findings.append(item)
    if not findings and len(logs) == len(evidence.logs) and len(metrics) == len(evidence.metrics):
        return evidence
    return evidence.model_copy(
        update={"logs": logs, "metrics": metrics, "kubernetes": [*evidence.kubernetes, *findings]}
    )
