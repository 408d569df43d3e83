"""Grounding: an answer may only rest on evidence that was gathered, and may only propose what
the allowlist lets run. Applied to LLM and offline answers alike.

- Every cited ref must be one of `evidence.refs()` (matched case-insensitively): a log line
  `L…`, a metric `M…`, a cluster finding `K…`, gathered first or by a follow-up tool call, or an
  earlier incident `H…` of the history given. Unknown refs are dropped, and each one lowers
  `confidence_score` by `UNKNOWN_REF_PENALTY` (15) points: an invented citation is evidence the
  model is confabulating.
- An analysis left citing no gathered evidence is capped at `UNGROUNDED_CONFIDENCE_CAP` (30).
- A proposed remediation is dropped unless the allowlist rule (`tools.actions.check_proposal`,
  the same one a run is held to) accepts it.
- What grounding changed is appended to the reasoning ("[Grounding] ...").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from firebreak.agents.schema import RootCauseAnalysis
from firebreak.store.schemas import EvidenceItem, HistoryRef, RcaBody, RemediationProposal
from firebreak.tools.actions import ActionError, check_proposal
from firebreak.tools.config import RemediationAction
from firebreak.tools.models import Evidence, KubeFinding, LogLine, MetricReading
from firebreak.tools.text import number, truncate

UNKNOWN_REF_PENALTY = 15
UNGROUNDED_CONFIDENCE_CAP = 30

_LIMITS = {name: field.metadata for name, field in RcaBody.model_fields.items()}


class Grounded:
    """The outcome of grounding: the corrected body, cited items and what was changed."""

    def __init__(self, body: dict[str, Any], items: list[EvidenceItem], notes: list[str]):
        self.body = body
        self.items = items
        self.notes = notes


def metric_text(reading: MetricReading) -> str:
    labels = ",".join(f"{k}={v}" for k, v in sorted(reading.series.items()) if k != "__name__")

    changed = f", changed at {reading.changed_at.isoformat()}" if reading.changed_at else ""
    return (
        f"{reading.query}{{{labels}}} baseline={number(reading.baseline)} "
        f"current={number(reading.current)} peak={number(reading.peak)}{changed}"
    )


def _log_text(line: LogLine) -> str:
    when = line.timestamp.isoformat() if line.timestamp else ""
    count = f" (x{line.count})" if line.count > 1 else ""
    return f"{when}{count} {line.text}".strip()


def _finding_text(finding: KubeFinding) -> str:
    when = finding.timestamp.isoformat() if finding.timestamp else ""
    count = f" (x{finding.count})" if finding.count > 1 else ""
    return f"{when} {finding.object}{count}: {finding.text}".strip()


def _item(ref: str, evidence: Evidence) -> EvidenceItem | None:
    for line in evidence.logs:
        if line.ref == ref:
            return EvidenceItem(ref=ref, kind="log", source=line.source, text=_log_text(line))
    for reading in evidence.metrics:
        if reading.ref == ref:
            return EvidenceItem(
                ref=ref, kind="metric", source=reading.source, text=metric_text(reading)
            )
    for finding in evidence.kubernetes:
        if finding.ref == ref:
            return EvidenceItem(
                ref=ref, kind="kubernetes", source=finding.source, text=_finding_text(finding)
            )
    return None


def _check_remediation(
    proposal: RemediationProposal, actions: Sequence[RemediationAction]
) -> str | None:
    """None if the proposal is allowed, else why not (the rule the run is held to)."""
    try:
        check_proposal(actions, proposal.action, [(p.name, p.value) for p in proposal.parameters])
    except ActionError as exc:
        return str(exc)
    return None


def ground(
    rca: RootCauseAnalysis,
    evidence: Evidence,
    actions: Sequence[RemediationAction] = (),
    history: Sequence[HistoryRef] = (),
) -> Grounded:
    """Apply the grounding rules of the module doc to an answer."""
    earlier = {item.ref: item for item in history}
    known = {ref.upper(): ref for ref in (*evidence.refs(), *earlier) if ref}

    cited: list[str] = []
    unknown: list[str] = []
    for raw in rca.evidence:
        ref = known.get(raw.strip().upper())
        if ref is None:
            if raw.strip() and raw.strip() not in unknown:
                unknown.append(raw.strip())
        elif ref not in cited:
            cited.append(ref)

    notes: list[str] = []
    confidence = rca.confidence_score
    if unknown:
        confidence -= UNKNOWN_REF_PENALTY * len(unknown)
        notes.append(
            f"dropped references to evidence that was never gathered: {', '.join(unknown)} "
            f"(confidence -{UNKNOWN_REF_PENALTY} each)"
        )
    if not cited and confidence > UNGROUNDED_CONFIDENCE_CAP:
        confidence = UNGROUNDED_CONFIDENCE_CAP
        notes.append(
            f"no gathered evidence is cited (confidence capped at {UNGROUNDED_CONFIDENCE_CAP})"
        )
    confidence = max(0, min(100, confidence))

    remediation = rca.remediation
    if remediation is not None:
        problem = _check_remediation(remediation, actions)
        if problem is not None:
            notes.append(f"dropped the proposed remediation: {problem}")
            remediation = None

    items: list[EvidenceItem] = []
    for ref in cited:
        item = _history_item(earlier[ref]) if ref in earlier else _item(ref, evidence)
        if item is not None:
            items.append(item)

    body = rca.model_dump(exclude={"evidence"})
    body["confidence_score"] = confidence
    body["remediation"] = remediation
    if notes:
        body["reasoning"] = fit(
            "reasoning", body["reasoning"], suffix=" [Grounding] " + "; ".join(notes) + "."
        )
    return Grounded(body, items, notes)


def _history_item(item: HistoryRef) -> EvidenceItem:
    cause = item.root_cause or "not analysed"
    if item.confirmed is not None:
        cause += " (confirmed)" if item.confirmed else " (corrected by a person)"
    fix = f"; fixed by {item.resolution}" if item.resolution else ""
    return EvidenceItem(
        ref=item.ref,
        kind="history",
        source=f"incident #{item.incident_id}",
        text=truncate(f"{item.title}: {cause}{fix}", 1000),
    )


def _limit(field: str) -> int:
    for meta in _LIMITS.get(field, []):
        max_length = getattr(meta, "max_length", None)
        if max_length is not None:
            return int(max_length)
    return 2000


def fit(field: str, text: str, *, prefix: str = "", suffix: str = "") -> str:
    """prefix + text + suffix within the field's max_length (the text is what gets cut)."""
    limit = _limit(field)
    room = limit - len(prefix) - len(suffix)
    if room < 1:
        return (prefix + text + suffix)[:limit]
    return prefix + truncate(text, room) + suffix
