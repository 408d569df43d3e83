"""Rank, de-duplicate and cap the evidence handed to the reasoning agent.

Why: log sources return hundreds of lines, mostly repeats of a few messages that differ only
in numbers and ids. A model (or a human) reads the distinct messages, how often each occurred,
and when each started; an unranked dump wastes the context budget on noise and buries the
deploy line that explains everything. So:

1. Every line is normalised into a *signature* (numbers, hex ids, UUIDs, IPs, timestamps
   become placeholders); equal signatures from one source collapse into one `LogLine` with a
   `count`, keeping the earliest occurrence (the onset is what explains an incident).
2. Each distinct line gets a score: errors, change events (deploy, restart, config), new
   signatures that only appear close to the incident, and proximity to a metric change point.
3. Metrics go in first (they are small and usually decisive), then the best-scoring lines until
   `budget_chars` is spent, of the steady high-volume streams of one ordinary message (access
   logs) only the `ROUTINE_KEPT` largest; kept lines are shown in chronological order with
   refs `L1..Ln`, metrics with `M1..Mn`.

The patterns below are shared with the log fetchers (server-side filters) and the offline
analyzer, so "error" means the same thing everywhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from firebreak.tools.models import Evidence, KubeFinding, LogLine, MetricReading, SourceReport
from firebreak.tools.promql import series_selector
from firebreak.tools.text import as_utc, number, truncate

__all__ = [
    "CHANGE_FILTER",
    "ERROR_FILTER",
    "MAX_LINE_CHARS",
    "build_evidence",
    "format_finding",
    "format_log_line",
    "format_metric",
    "is_change",
    "is_error",
    "metric_interest",
    "reading_values",
    "render_evidence",
    "signature",
]

# RE2-compatible (Loki) and Python-compatible at once: keep them free of look-arounds.
ERROR_FILTER = r"(?i)error|exception|fatal|panic|timeout|refused|oom|killed"
CHANGE_FILTER = (
    r"(?i)deploy|rollout|rolled out|rolling update|restart|reload|config(uration)? "
    r"(change|update|reload)|upgrad|migrat|released|new version|scaled"
)
# Python matches on the lower-cased line with case-sensitive patterns: `(?i)` alternations are
# several times slower in `re`, and these run over every line of every source.
_ERROR_RE = re.compile(ERROR_FILTER.removeprefix("(?i)") + r"|traceback|critical|fail(?:ed|ure)?\b")
_STATUS_5XX_RE = re.compile(r"(?:status|code)[=: \"]+5\d\d\b")
_SEVERE_RE = re.compile(r"fatal|panic|oom|out of memory|killed|segfault|crash")
_CHANGE_RE = re.compile(CHANGE_FILTER.removeprefix("(?i)"))

MAX_LINE_CHARS = 600  # one pathological line (a JSON blob, a stack dump) must not eat the budget
_LINE_OVERHEAD = 40  # ref, timestamp, source and count as rendered by `format_log_line`
_NEAR = timedelta(minutes=5)

_NORMALISERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"
            r"|\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d{1,2} \d{2}:\d{2}:\d{2}"
            r"|\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\b"
        ),
        "<TS>",
    ),
    (
        re.compile(
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
        ),
        "<UUID>",
    ),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<IP>"),
    (re.compile(r"\b(?:[0-9a-fA-F]{1,4}:){3,7}[0-9a-fA-F]{1,4}\b"), "<IP>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b"), "<HEX>"),
    (re.compile(r"([?&][\w.-]{1,40}=)[^&\s\"']+"), r"\1<Q>"),  # query-string values
    (re.compile(r"\d+(?:\.\d+)?"), "<N>"),
    (re.compile(r"\s+"), " "),
)


def signature(text: str) -> str:
    """The line with its variable parts replaced: equal signatures mean "the same message"."""
    for pattern, placeholder in _NORMALISERS:
        text = pattern.sub(placeholder, text)
    return text.strip()


_NONE_FAILED = re.compile(r"\b0 (?:failed|failures?|errors?)\b")


def is_error(text: str) -> bool:
    """Error-ish line: the same words the log back ends filter for, plus a few more. A count
    of nothing ("0 failed", "0 errors") is not one."""
    lowered = _NONE_FAILED.sub("", text.lower())
    if _ERROR_RE.search(lowered) is not None:
        return True
    return ("status" in lowered or "code" in lowered) and _STATUS_5XX_RE.search(lowered) is not None


def is_change(text: str) -> bool:
    """A change event: deploy, rollout, restart, config change, migration, scaling."""
    return _CHANGE_RE.search(text.lower()) is not None


def _ts(value: datetime | None) -> str:
    if value is None:
        return "?"
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_log_line(line: LogLine) -> str:
    """How a line is shown to the model and in Slack: `[L3] 12:00:01Z app (x12): text`."""
    count = f" (x{line.count})" if line.count > 1 else ""
    return f"[{line.ref}] {_ts(line.timestamp)} {line.source}{count}: {line.text}"


def format_metric(reading: MetricReading) -> str:
    """A metric summarised in one line, readable without a graph. The query stays whole (the
    model may query again), its series' labels said once (`promql.series_selector`)."""
    if not reading.history:
        change = ", no history"
    elif reading.changed_at:
        change = f", changed at {_ts(reading.changed_at)}"
    else:
        change = ", no change"
    return (
        f"[{reading.ref}] {reading.source}: {series_selector(reading.query, reading.series)} "
        f"baseline={number(reading.baseline)} current={number(reading.current)} "
        f"peak={number(reading.peak)}{change} ({reading.points} points)"
    )


class Summarised(Protocol):
    """A metric reading's numbers: a `MetricReading`, or the summary an analysis keeps."""

    @property
    def baseline(self) -> float | None: ...
    @property
    def current(self) -> float | None: ...
    @property
    def peak(self) -> float | None: ...
    @property
    def changed_at(self) -> datetime | None: ...


def reading_values(reading: Summarised) -> str:
    """`baseline=5.1 current=10 peak=10, changed at 2026-…`: the numbers an analysis's metric
    evidence shows after the metric's name."""
    changed = f", changed at {reading.changed_at.isoformat()}" if reading.changed_at else ""
    return (
        f"baseline={number(reading.baseline)} current={number(reading.current)} "
        f"peak={number(reading.peak)}{changed}"
    )


def format_finding(finding: KubeFinding) -> str:
    """`[K2] 2026-12-01T09:59:00Z prod pod/checkout-abc (x14): text`, as for log lines."""
    count = f" (x{finding.count})" if finding.count > 1 else ""
    where = f" {finding.object}" if finding.object else ""
    return (
        f"[{finding.ref}] {_ts(finding.timestamp)} {finding.source}{where}{count}: {finding.text}"
    )


def render_evidence(evidence: Evidence) -> str:
    """The whole evidence as text: metrics, then log lines, then what the clusters said, then
    sources that failed."""
    parts = [format_metric(m) for m in evidence.metrics]
    parts += [format_log_line(line) for line in evidence.logs]
    parts += [format_finding(finding) for finding in evidence.kubernetes]
    parts += [f"(source {r.source} failed: {r.error})" for r in evidence.reports if r.error]
    return "\n".join(parts) if parts else "(no evidence found)"


@dataclass
class _Group:
    first: LogLine
    count: int
    index: int  # position of the first occurrence, for stable ordering of untimed lines
    text: str
    sig: str
    last: datetime | None = None  # the latest occurrence


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _group(logs: Iterable[LogLine]) -> list[_Group]:
    groups: dict[tuple[str, str], _Group] = {}
    for index, line in enumerate(logs):
        text = truncate(line.text.rstrip(), MAX_LINE_CHARS)
        sig = signature(text)
        key = (line.source, sig)
        ts = _aware(line.timestamp)
        latest = _aware(line.last) or ts
        group = groups.get(key)
        if group is None:
            first = line.model_copy(update={"timestamp": ts})
            groups[key] = _Group(first, line.count, index, text, sig, latest)
            continue
        group.count += line.count
        if latest is not None and (group.last is None or latest > group.last):
            group.last = latest
        first_ts = _aware(group.first.timestamp)
        if ts is not None and (first_ts is None or ts < first_ts):
            group.first = line.model_copy(update={"timestamp": ts})
            group.text = text
    return list(groups.values())


def _anchors(metrics: Sequence[MetricReading], starts_at: datetime | None) -> list[datetime]:
    points = [_aware(m.changed_at) for m in metrics if m.changed_at is not None]
    if starts_at is not None:
        points.append(_aware(starts_at))
    return [p for p in points if p is not None]


def _score(group: _Group, anchors: list[datetime], earliest: datetime | None) -> float:
    text, ts = group.text, _aware(group.first.timestamp)
    score = 0.0
    if is_error(text):
        score += 3.0
        if _SEVERE_RE.search(text.lower()):
            score += 1.0
    if is_change(text):
        score += 3.0
    if group.count > 1:
        score += 0.5 * math.log10(group.count)
    if ts is not None and anchors:
        distance = min(abs((ts - a).total_seconds()) for a in anchors)
        if distance < _NEAR.total_seconds():
            score += 1.5 * (1 - distance / _NEAR.total_seconds())
        # A message first seen shortly before the incident (and not at the start of the
        # window, where "first seen" only means "the window began here") is a new behaviour.
        first_anchor = min(anchors)
        if earliest is not None and ts - earliest > _NEAR and ts >= first_anchor - 2 * _NEAR:
            score += 1.5
    return round(score, 3)


ROUTINE_KEPT = 2  # steady high-volume lines (access logs) kept as a picture of normal traffic
ROUTINE_COUNT = 10


def _routine(group: _Group, score: float) -> bool:
    """A steady stream of one ordinary message (no error, no change, not new, not near the
    incident): its score is only its volume's. A couple of them say "traffic flowed"; more
    say nothing new."""
    return group.count >= ROUTINE_COUNT and score <= 0.5 * math.log10(group.count) + 0.001


CHANGE_WEIGHT = 10.0  # a reading with a change point outranks every reading without one
MAX_SHIFT = 9.0  # relative shifts beyond 9x rank as 9x: large is large


def metric_interest(reading: MetricReading) -> float:
    """How telling a reading is: a change point first, then how far current and peak moved
    from the baseline (relative). Readings without a baseline (no history) score 0 and
    still reach the model, after the others. Ranks the evidence and the series of a query."""
    if reading.baseline is None or reading.current is None:
        return 0.0
    scale = max(abs(reading.baseline), 1e-9)
    peak = reading.peak if reading.peak is not None else reading.current
    shift = max(abs(reading.current - reading.baseline), abs(peak - reading.baseline))
    changed = CHANGE_WEIGHT if reading.changed_at is not None else 0.0
    return changed + min(shift / scale, MAX_SHIFT)


def build_evidence(
    logs: Iterable[LogLine],
    metrics: Iterable[MetricReading],
    reports: Iterable[SourceReport],
    budget_chars: int,
    *,
    starts_at: datetime | None = None,
) -> Evidence:
    """De-duplicate, score and cap; refs are assigned here (`L1..`, `M1..`).

    `starts_at` (the alert start) sharpens the scoring. Give it evidence already redacted
    (`Redactor.redact_evidence`, the one pass in `agents/evidence.py`): signatures are computed
    on the scrubbed text, so lines differing only in a token collapse too.
    """
    metric_list = sorted(metrics, key=metric_interest, reverse=True)
    kept_metrics: list[MetricReading] = []
    spent = 0
    metric_budget = budget_chars // 2  # metrics first, but never crowd out the logs entirely
    for reading in metric_list:
        numbered = reading.model_copy(update={"ref": f"M{len(kept_metrics) + 1}"})
        cost = len(format_metric(numbered)) + 1
        if spent + cost > metric_budget:
            continue
        kept_metrics.append(numbered)
        spent += cost

    groups = _group(logs)
    anchors = _anchors(kept_metrics, starts_at)
    stamps = [t for g in groups if (t := _aware(g.first.timestamp)) is not None]
    earliest = min(stamps) if stamps else None
    scored = [(g, _score(g, anchors, earliest)) for g in groups]
    # Best first; among equals prefer the earlier line (the onset explains, the tail repeats).
    scored.sort(key=lambda item: (-item[1], _sort_time(item[0]), item[0].index))

    kept: list[tuple[_Group, float]] = []
    routine = 0
    for group, score in scored:
        cost = len(group.text) + len(group.first.source) + _LINE_OVERHEAD
        if spent + cost > budget_chars:
            continue
        if _routine(group, score):
            routine += 1
            if routine > ROUTINE_KEPT:
                continue
        kept.append((group, score))
        spent += cost
    kept.sort(key=lambda item: (_sort_time(item[0]), item[0].index))
    lines = [
        LogLine(
            ref=f"L{n}",
            source=group.first.source,
            timestamp=group.first.timestamp,
            last=group.last if group.count > 1 else None,
            text=group.text,
            count=group.count,
            score=score,
        )
        for n, (group, score) in enumerate(kept, start=1)
    ]
    return Evidence(logs=lines, metrics=kept_metrics, reports=list(reports))


_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


def _sort_time(group: _Group) -> datetime:
    return _aware(group.first.timestamp) or _FAR_FUTURE
