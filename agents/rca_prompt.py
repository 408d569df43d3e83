"""The RCA prompt: what the reasoning LLM reads, built in one place for every step that asks
(the follow-up loop, the analysis, the token budget), so each sends the same text.

`rca_system.md` + `rca_user.md` (prompts/) are rendered from the *redacted* alert and evidence,
with Firebreak's leads and the earlier incidents. Each item is scrubbed once, on its way in
(the alert by `safe_alert`, the evidence by the graph's join and the tool box, each earlier
incident's line here); the rendered text is never scrubbed again as a whole: there the end of
one line and the ref that starts the next (`password:` ⏎ `[L12]`) read as a key and its value.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC

from firebreak.agents.leads import find
from firebreak.agents.prompts import evidence_boundary, fmt_value, oneline, render
from firebreak.store.schemas import HistoryRef, Lead
from firebreak.tools.config import RemediationAction
from firebreak.tools.models import AlertContext, Evidence
from firebreak.tools.redact import Redactor
from firebreak.tools.text import duration

__all__ = [
    "answer_now_message",
    "build_rca_messages",
    "build_repair_message",
    "cause_label",
    "history_lines",
    "rca_boundary",
    "safe_alert",
]


def safe_alert(alert: AlertContext, redactor: Redactor) -> AlertContext:
    """The alert with its labels and annotations scrubbed, as every prompt shows it."""
    return alert.model_copy(
        update={
            "labels": redactor.redact_value(dict(alert.labels)),
            "annotations": redactor.redact_value(dict(alert.annotations)),
        }
    )


def rca_boundary(alert: AlertContext, evidence: Evidence) -> str:
    """The marker id of the RCA prompt's data block (and of the tool results answering it)."""
    return evidence_boundary(evidence, alert.model_dump_json())


def build_rca_messages(
    alert: AlertContext,
    evidence: Evidence,
    actions: Sequence[RemediationAction] = (),
    redactor: Redactor | None = None,
    *,
    tools: int = 0,
    history: Sequence[HistoryRef] = (),
    leads: Sequence[Lead] | None = None,
) -> list[dict[str, str]]:
    """System + user messages for one investigation. `alert` (`safe_alert`) and `evidence`
    must already be redacted: nothing here scrubs them again. `tools`: how many
    follow-up calls the request offers (the system message then explains them); `history`:
    earlier incidents like this one, shown as evidence `H1`…; `leads`: Firebreak's own
    findings (computed from the evidence when not given)."""
    redactor = redactor or Redactor()
    boundary = rca_boundary(alert, evidence)
    if leads is None:
        leads = find(alert, evidence).leads()
    sources = {line.source for line in evidence.logs}
    system = render("rca_system.md", boundary=boundary, tools=tools)
    user = render(
        "rca_user.md",
        alert=alert,
        day=alert.starts_at.astimezone(UTC).strftime("%Y-%m-%d"),
        logs=evidence.logs,
        log_source=sources.pop() if len(sources) == 1 else None,
        metrics=evidence.metrics,
        kubernetes=evidence.kubernetes,
        reports=evidence.reports,
        actions=list(actions),
        boundary=boundary,
        history=[redactor.redact(line) for line in history_lines(history)],
        leads=list(leads),
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def history_lines(history: Sequence[HistoryRef]) -> list[str]:
    """One evidence line per earlier incident: its root cause and how it ended (facts). A cause
    a person confirmed or corrected says so: the model should trust it over an unjudged one."""
    lines = []
    for item in history:
        ended = "not resolved"
        if item.resolved_at is not None:
            ended = f"resolved by {item.resolved_by or 'unknown'} after "
            ended += duration(item.resolve_s)
        fix = item.resolution or "not recorded"
        cause = item.root_cause or "not analysed"
        lines.append(
            f"[{item.ref}] incident #{item.incident_id} ({fmt_value(item.created_at)}): "
            f"{oneline(item.title)} | {cause_label(item)}: {oneline(cause)} | fixed by: "
            f"{oneline(fix)} | {ended}"
        )
    return lines


def cause_label(item: HistoryRef) -> str:
    """ "root cause", "root cause (confirmed)" or "root cause (corrected by a person)"."""
    if item.confirmed is None:
        return "root cause"
    return "root cause (confirmed)" if item.confirmed else "root cause (corrected by a person)"


def answer_now_message() -> dict[str, str]:
    """After the follow-up calls: the user's turn asking for the RCA itself."""
    return {"role": "user", "content": render("rca_answer_now.md")}


def build_repair_message(
    errors: Sequence[str], bad_answer: str, redactor: Redactor | None = None
) -> dict[str, str]:
    """The user message asking the model to correct its previous answer: the answer and the
    problems quoting it are scrubbed as they come in, before they are put in the text."""
    redactor = redactor or Redactor()
    text = render(
        "rca_repair.md",
        errors=[redactor.redact(error) for error in errors],
        bad_answer=redactor.redact(bad_answer),
    )
    return {"role": "user", "content": text}
