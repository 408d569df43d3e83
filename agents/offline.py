"""The offline analyzer: a deterministic root-cause analysis from the evidence alone.

Why it exists: Firebreak must be useful with no LLM configured (`llm.provider: offline`, the
demo) and must still answer when the LLM fails. So this is not a placeholder: it does what an
on-call engineer does first with the same evidence —

1. find the dominant error signature(s) and when errors began;
2. look for a change (deploy, rollout, restart, config) shortly before the first error;
3. look for metrics whose change point is near the alert start, and which way they moved;
4. classify the dominant error (memory, disk, dependency, credentials, bug...) to suggest a
   mitigation that fits it;

and it says how sure it is: the confidence grows only with independent signals that agree in
time (a change, then errors, then a metric shift) and never reaches certainty, because timing
correlation is not proof. Every claim cites the refs (`L3`, `M1`) it rests on.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from firebreak.agents.schema import RootCauseAnalysis
from firebreak.store.payloads import service_of
from firebreak.tools.evidence import is_change, is_error, signature
from firebreak.tools.models import AlertContext, Evidence, LogLine, MetricReading, SourceReport
from firebreak.tools.promql import short_metric
from firebreak.tools.text import as_utc, number, truncate

__all__ = ["MAX_CONFIDENCE", "analyze_offline"]

MAX_CONFIDENCE = 80  # an offline correlation is never certain
CHANGE_BEFORE_ERROR = timedelta(minutes=30)
METRIC_NEAR = timedelta(minutes=15)
_EXCERPT = 160


@dataclass(frozen=True)
class _Category:
    name: str
    pattern: re.Pattern[str]
    mitigation: str
    prevention: str


_CATEGORIES: tuple[_Category, ...] = (
    _Category(
        "disk exhaustion",
        re.compile(r"(?i)no space left|disk (is )?full|enospc|read-only file system|quota"),
        "Free or extend the affected volume (rotate or delete old files) and restart the "
        "processes that failed to write.",
        "Alert on volume usage well before it is full and enforce log rotation and retention.",
    ),
    _Category(
        "memory exhaustion",
        re.compile(r"(?i)out of memory|\boom|oomkilled|memory limit|heap space|cannot allocate"),
        "Restart the affected instances to restore service and raise the memory limit or reduce "
        "load until the cause of the growth is fixed.",
        "Alert on memory use relative to the limit and load-test memory behaviour before release.",
    ),
    _Category(
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
    _Category(
        "a credential or certificate problem",
        re.compile(
            r"(?i)permission denied|unauthori[sz]ed|forbidden|\b40[13]\b|x509|certificate"
            r"|tls handshake|access denied|expired token|invalid token"
        ),
        "Check the credentials and certificates the service uses (expiry, rotation, "
        "permissions) and restore a valid one.",
        "Monitor certificate and token expiry and automate rotation with an overlap period.",
    ),
    _Category(
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
    _Category(
        "an application bug (unhandled error)",
        re.compile(
            r"(?i)panic|segfault|nil pointer|null ?pointer|nullpointerexception|traceback"
            r"|unhandled|uncaught|exception|stack ?trace|assert"
        ),
        "Roll back to the last good version if the error started after a release; otherwise "
        "route traffic away from the failing code path (feature flag) while it is fixed.",
        "Add a regression test for the failing path and gate releases on error-rate checks.",
    ),
    _Category(
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
class _Signature:
    text: str  # the earliest line's text, as shown to the reader
    lines: list[LogLine] = field(default_factory=list)
    count: int = 0

    @property
    def first(self) -> LogLine:
        return min(self.lines, key=_when)


@dataclass
class _Findings:
    signatures: list[_Signature]
    total_errors: int
    first_error: LogLine | None
    change: LogLine | None
    shifted: list[MetricReading]
    category: _Category | None
    failed: list[SourceReport]


_NEVER = datetime.max.replace(tzinfo=UTC)


def _when(line: LogLine) -> datetime:
    return as_utc(line.timestamp) if line.timestamp is not None else _NEVER


def _clock(moment: datetime | None) -> str:
    if moment is None:
        return "an unknown time"
    return as_utc(moment).astimezone(UTC).strftime("%H:%M:%S UTC")


def _excerpt(text: str, limit: int = _EXCERPT) -> str:
    text = " ".join(text.split())
    return truncate(text, limit)


def _num(value: float | None) -> str:
    return number(value, 3)


def _duration(delta: timedelta) -> str:
    seconds = int(abs(delta.total_seconds()))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _group_errors(logs: Iterable[LogLine]) -> tuple[list[_Signature], int]:
    groups: dict[str, _Signature] = {}
    total = 0
    for line in logs:
        if not is_error(line.text):
            continue
        key = signature(line.text)
        group = groups.setdefault(key, _Signature(text=line.text))
        group.lines.append(line)
        group.count += line.count
        total += line.count
    for group in groups.values():
        group.text = group.first.text
    ranked = sorted(groups.values(), key=lambda g: (-g.count, _when(g.first)))
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
        and anchor - CHANGE_BEFORE_ERROR <= _when(line) <= anchor + timedelta(seconds=5)
    ]
    return max(candidates, key=_when) if candidates else None


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


def _classify(signatures: list[_Signature], logs: list[LogLine]) -> _Category | None:
    texts = [s.text for s in signatures[:3]] or [line.text for line in logs if is_error(line.text)]
    for text in texts:
        for category in _CATEGORIES:
            if category.pattern.search(text):
                return category
    return None


def _investigate(
    alert: AlertContext, evidence: Evidence, symptoms: Collection[str] = ()
) -> _Findings:
    """`symptoms`: refs of lines that are never the change (what a cluster reports)."""
    starts_at = as_utc(alert.starts_at)
    signatures, total = _group_errors(evidence.logs)
    errors = [line for s in signatures for line in s.lines if line.timestamp is not None]
    first_error = min(errors, key=_when) if errors else None
    anchor = _when(first_error) if first_error is not None else starts_at
    change = _find_change([line for line in evidence.logs if line.ref not in symptoms], anchor)
    anchors = [starts_at] + ([_when(first_error)] if first_error is not None else [])
    return _Findings(
        signatures=signatures,
        total_errors=total,
        first_error=first_error,
        change=change,
        shifted=_shifted_metrics(evidence.metrics, anchors),
        category=_classify(signatures, evidence.logs),
        failed=[r for r in evidence.reports if r.error],
    )


def _describe_metric(reading: MetricReading) -> str:
    return short_metric(reading.query, reading.series)


def _direction(reading: MetricReading) -> str:
    baseline = reading.baseline or 0.0
    current = reading.current if reading.current is not None else baseline
    peak = reading.peak if reading.peak is not None else current
    if current < baseline and peak <= baseline * 1.2 + 1e-9:
        return f"dropped from {_num(baseline)} to {_num(current)}"
    return f"rose from {_num(baseline)} to {_num(current)} (peak {_num(peak)})"


def _confidence(findings: _Findings, has_evidence: bool) -> int:
    if not has_evidence:
        return 5
    score = 10
    if findings.signatures:
        score += 25
        if findings.total_errors and findings.signatures[0].count / findings.total_errors >= 0.5:
            score += 5
    if findings.change is not None and findings.first_error is not None:
        score += 20
    elif findings.change is not None:
        score += 10
    if findings.shifted:
        score += 15
    if findings.category is not None:
        score += 5
    score -= 5 * len(findings.failed)
    return max(5, min(MAX_CONFIDENCE, score))


def _cite(refs: list[str], *lines: LogLine | MetricReading | None) -> str:
    cited = [item.ref for item in lines if item is not None and item.ref]
    for ref in cited:
        if ref not in refs:
            refs.append(ref)
    return f" [{', '.join(cited)}]" if cited else ""


@dataclass(frozen=True)
class _Story:
    """What the offline analysis tells, gathered once: the alert and the main findings."""

    name: str
    service: str
    starts_at: datetime
    findings: _Findings
    has_evidence: bool
    configured: bool  # some log or metric source was asked at all
    refs: list[str]  # evidence cited so far, in the order the text cites it

    @property
    def top(self) -> _Signature | None:
        return self.findings.signatures[0] if self.findings.signatures else None

    @property
    def metric(self) -> MetricReading | None:
        return self.findings.shifted[0] if self.findings.shifted else None

    @property
    def kind(self) -> str:
        category = self.findings.category
        return category.name if category is not None else "an application error"


def analyze_offline(alert: AlertContext, evidence: Evidence) -> RootCauseAnalysis:
    """A grounded, cautious root-cause analysis from `evidence` alone (no LLM). What the
    clusters said is read as log lines (cited `K…`): an OOM kill reads as an error, a rollout
    as a change."""
    # A pod's "3 restarts" or a "Back-off restarting" event is a symptom, not a change: of
    # the findings, only a rollout may be the change that explains the errors.
    symptoms = {f.ref for f in evidence.kubernetes if f.kind != "rollout"}
    evidence = evidence.model_copy(
        update={"logs": [*evidence.logs, *(f.as_log_line() for f in evidence.kubernetes)]}
    )
    story = _Story(
        name=alert.labels.get("alertname", "the alert"),
        service=service_of(alert.labels, "the service"),
        starts_at=as_utc(alert.starts_at),
        findings=_investigate(alert, evidence, symptoms),
        has_evidence=bool(evidence.logs or evidence.metrics),
        configured=bool(evidence.reports or evidence.logs or evidence.metrics),
        refs=[],
    )
    facts = _facts(story, alert, evidence)
    confidence = _confidence(story.findings, story.has_evidence)
    facts.append(
        f"Confidence {confidence}/100: this offline analysis correlates timing and message "
        "patterns; it does not prove causation."
    )
    return RootCauseAnalysis(
        root_cause=truncate(_root_cause(story), 2000),
        reasoning=truncate(" ".join(facts), 4000),
        mitigation=truncate(" ".join(_mitigation(story)), 2000),
        prevention=truncate(" ".join(_prevention(story)), 2000),
        recommendation=truncate(" ".join(_recommendation(story, confidence)), 2000),
        confidence_score=confidence,
        remediation=None,
        evidence=story.refs,
    )


def _facts(story: _Story, alert: AlertContext, evidence: Evidence) -> list[str]:
    """What was found, in the order an engineer reads it; cites as it goes."""
    findings, refs, top = story.findings, story.refs, story.top
    first, change = findings.first_error, findings.change
    summary = alert.annotations.get("summary")
    facts = [
        f"Alert {story.name} on {story.service} started at {_clock(story.starts_at)}"
        + (f" ({_excerpt(summary)})." if summary else ".")
    ]
    if top is not None:
        share = (
            f"{top.count} of {findings.total_errors}" if findings.total_errors else str(top.count)
        )
        facts.append(
            f'The dominant error is "{_excerpt(top.text)}"{_cite(refs, top.first)}: '
            f"{share} error lines share this signature."
        )
        for other in findings.signatures[1:3]:
            facts.append(
                f'Also seen: "{_excerpt(other.text, 100)}"{_cite(refs, other.first)} '
                f"({other.count}x)."
            )
    if first is not None:
        lead = _when(first) - story.starts_at
        relation = "before" if lead.total_seconds() <= 0 else "after"
        facts.append(
            f"The earliest error in the window is at {_clock(first.timestamp)}, "
            f"{_duration(lead)} {relation} the alert started{_cite(refs, first)}."
        )
    if change is not None:
        anchor = "the first error" if first is not None else "the alert"
        gap = (_when(first) if first is not None else story.starts_at) - _when(change)
        facts.append(
            f"A change event precedes {anchor} by {_duration(gap)}: "
            f'"{_excerpt(change.text)}" at {_clock(change.timestamp)}{_cite(refs, change)}.'
        )
    elif story.has_evidence:
        facts.append("No deploy, restart or configuration change was found before the errors.")
    for reading in findings.shifted[:3]:
        facts.append(
            f"{_describe_metric(reading)} {_direction(reading)}, changing at "
            f"{_clock(reading.changed_at)}{_cite(refs, reading)}."
        )
    if story.has_evidence and not findings.shifted and evidence.metrics:
        facts.append("No collected metric changed near the alert start.")
    for report in findings.failed:
        facts.append(
            f"Source {report.source} ({report.kind}) failed: {_excerpt(report.error or '')}."
        )
    return facts


def _root_cause(story: _Story) -> str:
    top, change, metric = story.top, story.findings.change, story.metric
    name, service = story.name, story.service
    if not story.configured:
        return (
            f"No evidence could be gathered for {name} on {service}: no log or metric sources "
            "are configured (sources.logs, sources.metrics), so the cause cannot be determined "
            "offline."
        )
    if not story.has_evidence:
        return (
            f"No evidence was found for {name} on {service}: the configured log and metric "
            "sources returned nothing for the alert window, so the cause cannot be determined "
            "offline."
        )
    if top is not None and change is not None:
        cause = (
            f"Probably a regression introduced by the change at {_clock(change.timestamp)} "
            f'("{_excerpt(change.text, 100)}"): "{_excerpt(top.text, 120)}" errors '
            f"followed, pointing to {story.kind}."
        )
    elif top is not None:
        cause = (
            f'Most likely {story.kind}: {service} is logging "{_excerpt(top.text, 140)}" '
            f"({top.count}x since {_clock(top.first.timestamp)}), which would explain {name}."
        )
    elif change is not None:
        cause = (
            f'Possibly the change at {_clock(change.timestamp)} ("{_excerpt(change.text, 120)}")'
            f" shortly before {name}; no error lines confirm it."
        )
    elif metric is not None:
        return (
            f"{_describe_metric(metric)} {_direction(metric)} around {_clock(metric.changed_at)}, "
            "but no log line explains why; the cause is not visible in the collected evidence."
        )
    else:
        return (
            f"The collected evidence shows no error, change or metric shift that explains {name}; "
            "the cause is not visible in the configured sources."
        )
    if metric is not None:
        cause += f" {_describe_metric(metric)} {_direction(metric)} at the same time."
    return cause


def _mitigation(story: _Story) -> list[str]:
    change, category = story.findings.change, story.findings.category
    parts: list[str] = []
    if change is not None:
        parts.append(
            f"Roll back or revert the change at {_clock(change.timestamp)} and watch whether the "
            "errors stop."
        )
    if category is not None:
        parts.append(category.mitigation)
    return parts or [
        f"Check {story.service}'s recent deploys, configuration changes and dependencies, and "
        "restart or scale it if it is unhealthy while the cause is investigated."
    ]


def _prevention(story: _Story) -> list[str]:
    category = story.findings.category
    parts = [category.prevention] if category is not None else []
    if story.findings.change is not None:
        parts.append(
            "Roll changes out progressively (canary) with automatic rollback on error rate."
        )
    return parts or [
        f"Improve {story.service}'s observability so the next occurrence leaves a clear trail: "
        "structured error logs, deploy markers and alerts on the underlying symptom."
    ]


def _recommendation(story: _Story, confidence: int) -> list[str]:
    findings = story.findings
    parts: list[str] = []
    if findings.first_error is not None:
        parts.append(
            f"Start from the earliest error{_cite(story.refs, findings.first_error)} and confirm "
            "the sequence of events before acting."
        )
    if findings.failed:
        names = ", ".join(r.source for r in findings.failed)
        parts.append(f"Fix the failing evidence sources ({names}) and re-run.")
    if not story.configured:
        parts.append(
            "Configure a log source (Loki, Elasticsearch or files) and a Prometheus source for "
            "this service, or run `firebreak init`, then re-investigate."
        )
    elif not story.has_evidence:
        parts.append(
            "Check that the log and metric sources cover this service (query templates and "
            "labels) and investigate manually."
        )
    elif confidence < 40:
        parts.append("Confidence is low: treat this as a lead, not a conclusion.")
    return parts or ["Verify the suspected cause before applying the mitigation."]
