"""Leads: what Firebreak's own rules find in the evidence, computed once per investigation.

What an on-call engineer does first with the same evidence, as data: the dominant error
signatures and when errors began, a change (deploy, rollout, restart, config) shortly before
the first error, metrics whose change point is near the alert start, and what kind of failure
the dominant error looks like. `find()` returns it all (`Findings`); `Findings.leads()` says it
as numbered one-line `Lead`s, each citing the evidence refs it rests on.

The same findings serve three readers: the offline analyzer writes its analysis from them
(agents/offline.py), the reasoning LLM gets the leads in its prompt (to check, not to copy),
and grounding compares the LLM's answer with them (agents/grounding.py). What the clusters
said is read as log lines: an OOM kill reads as an error, a rollout as a change, a pod's
restart count never as the change.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from firebreak.store.schemas import Lead
from firebreak.tools.evidence import is_change, is_error, signature
from firebreak.tools.models import AlertContext, Evidence, LogLine, MetricReading, SourceReport
from firebreak.tools.promql import short_metric
from firebreak.tools.text import as_utc, number, truncate, without_stamp

__all__ = ["CATEGORIES", "Category", "Findings", "Signature", "clock", "duration", "find"]

CHANGE_BEFORE_ERROR = timedelta(minutes=30)
METRIC_NEAR = timedelta(minutes=15)
_EXCERPT = 160


@dataclass(frozen=True)
class Category:
    name: str
    pattern: re.Pattern[str]
    mitigation: str
    prevention: str


CATEGORIES: tuple[Category, ...] = (
    Category(
        "disk exhaustion",
        re.compile(r"(?i)no space left|disk (is )?full|enospc|read-only file system|quota"),
        "Free or extend the affected volume (rotate or delete old files) and restart the "
        "processes that failed to write.",
        "Alert on volume usage well before it is full and enforce log rotation and retention.",
    ),
    Category(
        "memory exhaustion",
        re.compile(r"(?i)out of memory|\boom|oomkilled|memory limit|heap space|cannot allocate"),
        "Restart the affected instances to restore service and raise the memory limit or reduce "
        "load until the cause of the growth is fixed.",
        "Alert on memory use relative to the limit and load-test memory behaviour before release.",
    ),
    Category(
        "database or connection-pool contention",
        re.compile(
            r"(?i)too many connections|pool (is )?(exhausted|timeout)|connection pool|deadlock"
            r"|lock wait|could not obtain connection"
        ),
        "Relieve the database: stop or throttle the heaviest callers, kill stuck sessions and "
        "check the pool size against the database's connection limit.",
        "Size connection pools against the database limit, set query timeouts and alert on "
        "pool saturation.",
    ),
    Category(
        "a credential or certificate problem",
        re.compile(
            r"(?i)permission denied|unauthori[sz]ed|forbidden|\b40[13]\b|x509|certificate"
            r"|tls handshake|access denied|expired token|invalid token"
        ),
        "Check the credentials and certificates the service uses (expiry, rotation, "
        "permissions) and restore a valid one.",
        "Monitor certificate and token expiry and automate rotation with an overlap period.",
    ),
    Category(
        "a dependency that is unreachable or slow",
        re.compile(
            r"(?i)connection refused|econnrefused|timed? ?out|timeout|unreachable|no route to host"
            r"|name resolution|no such host|connection reset|broken pipe|\b50[234]\b|upstream"
        ),
        "Check the health of the dependency named in the errors (and the network path to it); "
        "fail over or scale it, and shed load on this service until it recovers.",
        "Set timeouts, retries with backoff and circuit breakers on calls to the dependency, "
        "and alert on its availability directly.",
    ),
    Category(
        "an application bug (unhandled error)",
        re.compile(
            r"(?i)panic|segfault|nil pointer|null ?pointer|nullpointerexception|traceback"
            r"|unhandled|uncaught|exception|stack ?trace|assert|syntax error"
        ),
        "Roll back to the last good version if the error started after a release; otherwise "
        "route traffic away from the failing code path (feature flag) while it is fixed.",
        "Add a regression test for the failing path and gate releases on error-rate checks.",
    ),
    Category(
        "a configuration error",
        re.compile(
            r"(?i)invalid (config|configuration|value|setting)|missing (env|config|setting|key)"
            r"|unknown (option|flag|key)|parse error|keyerror"
        ),
        "Restore the last known-good configuration and restart the affected service.",
        "Validate configuration in CI and at start-up, and roll it out progressively like code.",
    ),
)


@dataclass
class Signature:
    """One error message and its repeats; `text` is the earliest line's."""

    text: str
    lines: list[LogLine] = field(default_factory=list)
    count: int = 0

    @property
    def first(self) -> LogLine:
        return min(self.lines, key=when)


@dataclass
class Findings:
    """What the rules found; `leads()` says it in lines."""

    starts_at: datetime
    signatures: list[Signature]
    total_errors: int
    first_error: LogLine | None
    change: LogLine | None
    shifted: list[MetricReading]
    category: Category | None
    failed: list[SourceReport]

    @property
    def top(self) -> Signature | None:
        return self.signatures[0] if self.signatures else None

    def leads(self) -> list[Lead]:
        """The findings as numbered leads, earliest cause first: the change, the first error,
        the dominant error when it is another one, the metrics that moved, the sources that
        failed (which say what the evidence is missing). Short: the model reads the cited
        lines themselves."""
        leads: list[Lead] = []
        first, change, top = self.first_error, self.change, self.top
        if change is not None:
            anchor = first.timestamp if first is not None else self.starts_at
            gap = duration(as_utc(anchor) - when(change)) if anchor else "shortly"
            before = "the first error" if first is not None else "the alert"
            leads.append(
                _lead("change", f"A change {gap} before {before}: {quote(change.text)}", [change])
            )
        if first is not None:
            repeats = ""
            if top is not None and first in top.lines:
                repeats = f" ({top.count} of {self.total_errors} errors)"
            kind = f", like {self.category.name}" if self.category else ""
            leads.append(
                _lead(
                    "first_error", f"The first error{repeats}{kind}: {quote(first.text)}", [first]
                )
            )
        if top is not None and (first is None or first not in top.lines):
            text = f"The most frequent error ({top.count} of {self.total_errors}): "
            leads.append(_lead("dominant_error", text + quote(top.text), [top.first]))
        if self.shifted:
            leads.append(self._metrics_lead())
        for report in self.failed:
            leads.append(
                Lead(
                    number=0,
                    kind="source_failed",
                    text=f"Source {report.source} ({report.kind}) failed, its evidence is "
                    f"missing: {excerpt(report.error or '', 120)}",
                )
            )
        return [lead.model_copy(update={"number": n}) for n, lead in enumerate(leads, start=1)]

    def _metrics_lead(self) -> Lead:
        """The metric that moved first (what moved first is nearer the cause than what
        followed), and when the others followed."""
        first, *others = self.shifted
        text = (
            f"{describe_metric(first)} moved first: it {direction(first, peak=False)} at "
            f"{clock(first.changed_at)}"
        )
        if others:
            later = ", ".join(f"{o.ref} at {clock(o.changed_at)}" for o in others[:4])
            text += f"; then {later}"
        return Lead(number=0, kind="metric", text=text, refs=[first.ref], at=first.changed_at)


def find(alert: AlertContext, evidence: Evidence) -> Findings:
    """The findings over the evidence, the clusters' findings read as log lines (only a
    rollout may be the change: a restart count is a symptom)."""
    symptoms = {f.ref for f in evidence.kubernetes if f.kind != "rollout"}
    logs = [*evidence.logs, *(f.as_log_line() for f in evidence.kubernetes)]
    starts_at = as_utc(alert.starts_at)
    signatures, total = _group_errors(logs)
    errors = [line for s in signatures for line in s.lines if line.timestamp is not None]
    first_error = min(errors, key=when) if errors else None
    anchor = when(first_error) if first_error is not None else starts_at
    change = _find_change([line for line in logs if line.ref not in symptoms], anchor)
    anchors = [starts_at] + ([when(first_error)] if first_error is not None else [])
    return Findings(
        starts_at=starts_at,
        signatures=signatures,
        total_errors=total,
        first_error=first_error,
        change=change,
        shifted=_shifted_metrics(evidence.metrics, anchors),
        category=_classify(signatures, logs),
        failed=[r for r in evidence.reports if r.error],
    )


# -------------------------------------------------------------------------------- wording


_NEVER = datetime.max.replace(tzinfo=UTC)


def when(line: LogLine) -> datetime:
    return as_utc(line.timestamp) if line.timestamp is not None else _NEVER


def clock(moment: datetime | None) -> str:
    if moment is None:
        return "an unknown time"
    return as_utc(moment).astimezone(UTC).strftime("%H:%M:%S UTC")


def excerpt(text: str, limit: int = _EXCERPT) -> str:
    return truncate(" ".join(text.split()), limit)


def duration(delta: timedelta) -> str:
    seconds = int(abs(delta.total_seconds()))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def describe_metric(reading: MetricReading) -> str:
    return short_metric(reading.query, reading.series)


def direction(reading: MetricReading, *, peak: bool = True) -> str:
    baseline = reading.baseline or 0.0
    current = reading.current if reading.current is not None else baseline
    highest = reading.peak if reading.peak is not None else current
    if current < baseline and highest <= baseline * 1.2 + 1e-9:
        return f"dropped from {number(baseline, 3)} to {number(current, 3)}"
    rose = f"rose from {number(baseline, 3)} to {number(current, 3)}"
    return f"{rose} (peak {number(highest, 3)})" if peak else rose


def quote(text: str, limit: int = 70) -> str:
    """A line as a lead quotes it: without its timestamp, cut short."""
    return f'"{excerpt(without_stamp(text), limit)}"'


def _lead(kind: str, text: str, items: list[LogLine] | list[MetricReading]) -> Lead:
    at = items[0].changed_at if isinstance(items[0], MetricReading) else items[0].timestamp
    if isinstance(items[0], LogLine) and at is not None:
        text = f"{text} at {clock(at)}"
    return Lead(number=0, kind=kind, text=text, refs=[i.ref for i in items if i.ref], at=at)


# -------------------------------------------------------------------------------- finding


def _group_errors(logs: Iterable[LogLine]) -> tuple[list[Signature], int]:
    groups: dict[str, Signature] = {}
    total = 0
    for line in logs:
        if not is_error(line.text):
            continue
        key = signature(line.text)
        group = groups.setdefault(key, Signature(text=line.text))
        group.lines.append(line)
        group.count += line.count
        total += line.count
    for group in groups.values():
        group.text = group.first.text
    ranked = sorted(groups.values(), key=lambda g: (-g.count, when(g.first)))
    return ranked, total


def _find_change(logs: Iterable[LogLine], anchor: datetime | None) -> LogLine | None:
    """The latest change event in the 30 minutes before `anchor` (first error or alert)."""
    if anchor is None:
        return None
    candidates = [
        line
        for line in logs
        if is_change(line.text)
        and line.timestamp is not None
        and anchor - CHANGE_BEFORE_ERROR <= when(line) <= anchor + timedelta(seconds=5)
    ]
    return max(candidates, key=when) if candidates else None


def _shifted_metrics(
    metrics: Iterable[MetricReading], anchors: list[datetime]
) -> list[MetricReading]:
    shifted: list[tuple[datetime, MetricReading]] = []
    for reading in metrics:
        if reading.changed_at is None or reading.baseline is None:
            continue
        changed_at = as_utc(reading.changed_at)
        if any(abs(changed_at - anchor) <= METRIC_NEAR for anchor in anchors):
            shifted.append((changed_at, reading))
    shifted.sort(key=lambda item: item[0])
    return [reading for _, reading in shifted]


def _classify(signatures: list[Signature], logs: Collection[LogLine]) -> Category | None:
    texts = [s.text for s in signatures[:3]] or [line.text for line in logs if is_error(line.text)]
    for text in texts:
        for category in CATEGORIES:
            if category.pattern.search(text):
                return category
    return None
