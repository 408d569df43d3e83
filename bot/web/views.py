"""What the incident page shows, assembled from what the store returned.

Pure functions of the store's answers, so the templates stay dumb: the evidence the last
investigation gathered (logs, metric readings with their chart geometry), which of it the RCA
cites, and the RCA text with every ref (`L3`, `M1`, `K2`, `H1`) turned into a link to its
evidence line. The stored evidence is JSON written by older and newer versions alike, so it
is read tolerantly: an item that does not validate is left out, never a 500.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup, escape
from pydantic import ValidationError

from firebreak.bot.web.charts import SvgChart, svg_chart
from firebreak.store.schemas import Analysis, Feedback, IncidentOut, TimelineEventOut
from firebreak.tools.models import LogLine, MetricReading

REF = re.compile(r"(?<![A-Za-z0-9])([LMKH][1-9]\d{0,3})(?![A-Za-z0-9])")
RCA_FIELDS = ("root_cause", "reasoning", "mitigation", "prevention", "recommendation")
MAX_OUTPUT_CHARS = 600


@dataclass(frozen=True)
class EvidenceRow:
    ref: str
    kind: str  # log | metric | other (a tool result, a past incident...)
    source: str
    text: str
    cited: bool
    at: datetime | None = None
    count: int = 1
    chart: SvgChart | None = None
    stats: list[tuple[str, str]] = field(default_factory=list)  # a reading's numbers


@dataclass(frozen=True)
class RcaView:
    sections: list[tuple[str, Markup]]  # (heading, text with linked refs)
    confidence: int
    execution_status: str
    provider: str
    model: str
    created_at: datetime | None
    proposal: str | None
    feedback: Feedback | None = None  # a person's verdict on it, shown under it


@dataclass(frozen=True)
class RunView:
    action: str
    parameters: str
    reason: str
    approved_by: str
    phase: str
    ok: bool | None
    verified: bool | None
    output: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class IncidentView:
    incident: IncidentOut
    started: datetime
    rca: RcaView | None
    metrics: list[EvidenceRow]
    logs: list[EvidenceRow]
    other: list[EvidenceRow]
    runs: list[RunView]
    timeline: list[TimelineEventOut]
    related: Mapping[str, Sequence[Any]] | None = None  # store.memory.related


def build_view(
    incident: IncidentOut,
    events: list[TimelineEventOut],
    gathered: Mapping[str, Any] | None,
    runs: Sequence[Any],
    related: Mapping[str, Sequence[Any]] | None = None,
) -> IncidentView:
    """`related`: `{"similar": [...], "concurrent": [...]}`, items with `id`, `title`,
    `status`, `root_cause` (the contract's related-incidents JSON); None until it exists."""
    started = min((a.starts_at for a in incident.alerts), default=incident.created_at)
    analysis = incident.analysis
    cited = cited_refs(analysis)
    metrics = _metric_rows(gathered or {}, cited, started)
    logs = _log_rows(gathered or {}, cited)
    shown = {row.ref for row in metrics + logs}
    other = [
        EvidenceRow(item.ref, item.kind, item.source, item.text, True)
        for item in (analysis.evidence if analysis else [])
        if item.ref not in shown
    ]
    known = shown | {row.ref for row in other}
    return IncidentView(
        incident=incident,
        started=started,
        rca=_rca(analysis, known) if analysis else None,
        metrics=metrics,
        logs=logs,
        other=other,
        runs=[_run(row) for row in runs],
        timeline=events,
        related=related,
    )


def cited_refs(analysis: Analysis | None) -> set[str]:
    """Refs the analysis rests on: its evidence items and every ref its text names."""
    if analysis is None:
        return set()
    refs = {item.ref for item in analysis.evidence}
    for name in RCA_FIELDS:
        refs.update(REF.findall(getattr(analysis, name)))
    return refs


def linked(text: str, known: set[str]) -> Markup:
    """`text` escaped, each known ref an anchor to its evidence line."""
    parts: list[str] = []
    last = 0
    for match in REF.finditer(text):
        ref = match.group(1)
        parts.append(escape(text[last : match.start()]))
        if ref in known:
            parts.append(Markup('<a class="ref" href="#ref-{0}">{0}</a>').format(ref))
        else:
            parts.append(Markup('<span class="ref">{}</span>').format(ref))
        last = match.end()
    parts.append(escape(text[last:]))
    return Markup("").join(parts)


def _rca(analysis: Analysis, known: set[str]) -> RcaView:
    headings = ("Root cause", "Reasoning", "Mitigation", "Prevention", "Recommendation")
    proposal = analysis.remediation
    return RcaView(
        sections=[
            (heading, linked(getattr(analysis, name), known))
            for heading, name in zip(headings, RCA_FIELDS, strict=True)
        ],
        confidence=analysis.confidence_score,
        execution_status=analysis.execution_status.value,
        provider=analysis.provider,
        model=analysis.model,
        created_at=analysis.created_at,
        proposal=(
            f"{proposal.action}({_params({p.name: p.value for p in proposal.parameters})}): "
            f"{proposal.reason}"
            if proposal
            else None
        ),
        feedback=analysis.feedback,
    )


def _metric_rows(
    gathered: Mapping[str, Any], cited: set[str], started: datetime
) -> list[EvidenceRow]:
    rows = []
    for raw in _items(gathered, "metrics"):
        try:
            reading = MetricReading.model_validate(raw)
        except ValidationError:
            continue
        rows.append(
            EvidenceRow(
                ref=reading.ref,
                kind="metric",
                source=reading.source,
                text=_series_name(reading),
                cited=reading.ref in cited,
                at=reading.changed_at,
                chart=svg_chart(raw, started),
                stats=_stats(reading),
            )
        )
    return rows


def _series_name(reading: MetricReading) -> str:
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(reading.series.items()) if k != "__name__")
    return f"{reading.query} {{{labels}}}" if labels else reading.query


def _stats(reading: MetricReading) -> list[tuple[str, str]]:
    numbers = [("baseline", reading.baseline), ("now", reading.current), ("peak", reading.peak)]
    stats = [(name, f"{value:.4g}") for name, value in numbers if value is not None]
    if reading.changed_at is not None:
        stats.append(("changed", reading.changed_at.astimezone(UTC).strftime("%H:%M:%S UTC")))
    return [*stats, ("points", str(reading.points))]


def _log_rows(gathered: Mapping[str, Any], cited: set[str]) -> list[EvidenceRow]:
    rows = []
    for raw in _items(gathered, "logs"):
        try:
            line = LogLine.model_validate(raw)
        except ValidationError:
            continue
        rows.append(
            EvidenceRow(
                ref=line.ref,
                kind="log",
                source=line.source,
                text=line.text,
                cited=line.ref in cited,
                at=line.timestamp,
                count=line.count,
            )
        )
    return rows


def _items(gathered: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    found = gathered.get(key)
    if not isinstance(found, list):
        return []
    return [item for item in found if isinstance(item, Mapping) and item.get("ref")]


def _run(row: Any) -> RunView:
    output = row.output or ""
    return RunView(
        action=row.action,
        parameters=_params(dict(sorted((row.parameters or {}).items()))),  # JSONB reorders
        reason=row.reason or "",
        approved_by=row.approved_by,
        phase=row.phase,
        ok=row.ok,
        verified=row.verified,
        output=output if len(output) <= MAX_OUTPUT_CHARS else output[: MAX_OUTPUT_CHARS - 1] + "…",
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _params(parameters: Mapping[str, Any]) -> str:
    return ", ".join(f"{name}={value}" for name, value in parameters.items())
