"""Grounding: an answer may only rest on evidence that was gathered, may only propose what the
allowlist lets run, and is scored by how well the evidence and the leads bear it out. Applied
to LLM and offline answers alike; what follows from the verdict is the reasoning agent's call.

- Every cited ref must be one of `evidence.refs()` (case-insensitive): a log line `L…`, a metric
  `M…`, a cluster finding `K…`, gathered first or by a follow-up tool call, or an earlier
  incident `H…` of the history given. A cited string that is no ref but holds one (`[L14]`) or
  quotes an item's text (small models pad the list with lines) is read as that item's ref.
  What is left is invented: each lowers `confidence_score` by `UNKNOWN_REF_PENALTY` (5), at
  most `MAX_REF_PENALTY` (20) in all.
- An analysis left citing no gathered evidence is capped at `UNGROUNDED_CONFIDENCE_CAP` (30).
- `support`: does the evidence the answer cites speak of the cause it names (agents/claims.py)?
  `supported`, or why not: `no_evidence` (nothing gathered is cited), `symptom` (the cause
  only restates the alert), `unrelated` (no cited item speaks of it).
- `relevant`: the cited refs that speak of the cause, or only of the symptom (the 5xx rate
  that fired the alert); the rest speak of something else (a small model pads its list with
  every ref it was shown).
- `comparable`: the leads (agents/leads.py) whose evidence names more than the alert's own
  symptom; `agreeing`: those whose evidence speaks of the cause too.
- A proposed remediation is dropped unless the allowlist rule (`tools.actions.check_proposal`,
  the same one a run is held to) accepts it.
- What grounding changed is appended to the reasoning ("[Grounding] ...").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, Literal

from firebreak.agents.claims import cause_terms, names_a_cause, speaks_of
from firebreak.agents.schema import RootCauseAnalysis
from firebreak.store.schemas import (
    EvidenceItem,
    GroundingReport,
    HistoryRef,
    Lead,
    LineReading,
    MetricSummary,
    RcaBody,
    RemediationProposal,
)
from firebreak.tools.actions import ActionError, check_proposal
from firebreak.tools.config import RemediationAction
from firebreak.tools.evidence import reading_values
from firebreak.tools.models import Evidence, KubeFinding, LogLine, MetricReading
from firebreak.tools.text import truncate

UNKNOWN_REF_PENALTY = 5
MAX_REF_PENALTY = 20
UNGROUNDED_CONFIDENCE_CAP = 30
_QUOTE_MIN_CHARS = 12  # a shorter cited string is not read as a quoted line
_REF_IN_TEXT = re.compile(r"\b([LMKH]\d{1,4})\b", re.IGNORECASE)
_LIMITS = {name: field.metadata for name, field in RcaBody.model_fields.items()}

Support = Literal["supported", "no_evidence", "symptom", "unrelated"]


@dataclass
class Grounded:
    """The outcome of grounding: the corrected body, the cited items, what was changed, and
    how well the evidence and the leads bear the cause out."""

    body: dict[str, Any]
    items: list[EvidenceItem]
    notes: list[str]
    support: Support = "supported"
    agreeing: list[Lead] = field(default_factory=list)
    invented: list[str] = field(default_factory=list)
    comparable: list[Lead] = field(default_factory=list)  # leads that name more than a symptom
    relevant: list[str] = field(default_factory=list)  # cited refs about the cause or symptom

    def report(self) -> GroundingReport:
        return GroundingReport(
            cited=[item.ref for item in self.items],
            invented=[truncate(ref, 40) for ref in self.invented[:20]],
            support=self.support,
            comparable=[lead.number for lead in self.comparable],
            agreeing=[lead.number for lead in self.agreeing],
        )


def metric_text(reading: MetricReading) -> str:
    labels = ",".join(f"{k}={v}" for k, v in sorted(reading.series.items()) if k != "__name__")
    return f"{reading.query}{{{labels}}} {reading_values(reading)}"


def _log_text(line: LogLine) -> str:
    when = line.timestamp.isoformat() if line.timestamp else ""
    count = f" (x{line.count})" if line.count > 1 else ""
    return f"{when}{count} {line.text}".strip()


def _finding_text(finding: KubeFinding) -> str:
    when = finding.timestamp.isoformat() if finding.timestamp else ""
    count = f" (x{finding.count})" if finding.count > 1 else ""
    return f"{when} {finding.object}{count}: {finding.text}".strip()


def _item(ref: str, evidence: Evidence) -> EvidenceItem | None:
    """The cited item: its text as shown, and the same reading structured."""
    for line in evidence.logs:
        if line.ref == ref:
            read = LineReading(line=line.text, timestamp=line.timestamp, count=line.count)
            return EvidenceItem(
                ref=ref, kind="log", source=line.source, text=_log_text(line), line=read
            )
    for reading in evidence.metrics:
        if reading.ref == ref:
            return EvidenceItem(
                ref=ref,
                kind="metric",
                source=reading.source,
                text=metric_text(reading),
                metric=_summary(reading),
            )
    for finding in evidence.kubernetes:
        if finding.ref == ref:
            read = LineReading(
                line=finding.text,
                timestamp=finding.timestamp,
                count=finding.count,
                object=finding.object,
            )
            return EvidenceItem(
                ref=ref,
                kind="kubernetes",
                source=finding.source,
                text=_finding_text(finding),
                line=read,
            )
    return None


def _summary(reading: MetricReading) -> MetricSummary:
    return MetricSummary(
        query=reading.query,
        labels={k: v for k, v in reading.series.items() if k != "__name__"},
        baseline=reading.baseline,
        current=reading.current,
        peak=reading.peak,
        changed_at=reading.changed_at,
        points=reading.points,
    )


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
    *,
    leads: Sequence[Lead] = (),
    symptoms: AbstractSet[str] = frozenset(),
) -> Grounded:
    """Apply the grounding rules of the module doc to an answer. `symptoms`: the alert's own
    words (`claims.symptom_terms`), which name no cause."""
    earlier = {item.ref: item for item in history}
    texts = _texts(evidence, earlier)
    cited, invented = _resolve(rca.evidence, texts)

    notes: list[str] = []
    confidence = rca.confidence_score
    if invented:
        penalty = min(MAX_REF_PENALTY, UNKNOWN_REF_PENALTY * len(invented))
        confidence -= penalty
        notes.append(
            f"dropped references to evidence that was never gathered: "
            f"{', '.join(truncate(ref, 40) for ref in invented)} (confidence -{penalty})"
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
    claim = rca.root_cause
    support = _support(claim, [texts[ref] for ref in cited], symptoms)
    relevant = [
        ref
        for ref in cited
        if speaks_of(claim, [texts[ref]], symptoms) or not names_a_cause(texts[ref], symptoms)
    ]
    comparable = []
    agreeing = []
    for lead in leads:
        said = [texts.get(ref, "") for ref in lead.refs]
        if not lead.refs or not any(names_a_cause(text, symptoms) for text in said):
            continue
        comparable.append(lead)
        if speaks_of(claim, said, symptoms):
            agreeing.append(lead)
    return Grounded(body, items, notes, support, agreeing, invented, comparable, relevant)


def _support(claim: str, cited_texts: list[str], symptoms: AbstractSet[str]) -> Support:
    if not cited_texts:
        return "no_evidence"
    if not cause_terms(claim, symptoms):
        return "symptom"
    return "supported" if speaks_of(claim, cited_texts, symptoms) else "unrelated"


def _texts(evidence: Evidence, earlier: dict[str, HistoryRef]) -> dict[str, str]:
    """Every citable ref and what it says (a metric: what it measures)."""
    texts = {line.ref: _log_text(line) for line in evidence.logs}
    texts |= {reading.ref: _metric_about(reading) for reading in evidence.metrics}
    texts |= {finding.ref: _finding_text(finding) for finding in evidence.kubernetes}
    texts |= {ref: _history_item(item).text for ref, item in earlier.items()}
    texts.pop("", None)
    return texts


def _metric_about(reading: MetricReading) -> str:
    """What a reading is about (its query and series), without the summary's own words."""
    return f"{reading.query} " + " ".join(f"{k}={v}" for k, v in sorted(reading.series.items()))


def _resolve(raw_refs: Sequence[str], texts: dict[str, str]) -> tuple[list[str], list[str]]:
    """(the cited refs that exist, in order, once each; the cited strings that name none)."""
    known = {ref.upper(): ref for ref in texts}
    cited: list[str] = []
    invented: list[str] = []
    for raw in raw_refs:
        given = raw.strip()
        if not given:
            continue
        ref = known.get(given.upper()) or _named_in(given, known) or _quoted(given, texts)
        if ref is None:
            if given not in invented:
                invented.append(given)
        elif ref not in cited:
            cited.append(ref)
    return cited, invented


def _named_in(given: str, known: dict[str, str]) -> str | None:
    """`[L14]`, `L14:`, `ref L14`: the one known ref the string names."""
    found = {known[m.upper()] for m in _REF_IN_TEXT.findall(given[:200]) if m.upper() in known}
    return found.pop() if len(found) == 1 else None


def _quoted(given: str, texts: dict[str, str]) -> str | None:
    """The item whose text the string quotes (or that quotes the string)."""
    if len(given) < _QUOTE_MIN_CHARS:
        return None
    needle = " ".join(given.split()).lower()[:600]
    for ref, text in texts.items():
        haystack = " ".join(text.split()).lower()
        if needle in haystack or (len(haystack) >= _QUOTE_MIN_CHARS and haystack in needle):
            return ref
    return None


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
