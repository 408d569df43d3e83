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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from firebreak.store.schemas import Lead
from firebreak.tools.evidence import is_change, is_error, signature
from firebreak.tools.models import AlertContext, Evidence, LogLine, MetricReading, SourceReport
from firebreak.tools.promql import short_metric
from firebreak.tools.text import as_utc, duration, number, truncate, without_stamp

__all__ = ["CATEGORIES", "Category", "Findings", "Signature", "clock", "find"]

CHANGE_BEFORE_ERROR = timedelta(minutes=30)
METRIC_NEAR = timedelta(minutes=15)
_EXCERPT = 160


@dataclass(frozen=True)
class Category:
    name: str
    pattern: re.Pattern[str]
    mitigation: str
    prevention: str


# Most specific first: a line that names a full disk explains more than one that says a
# dependency timed out (the database that ran out of disk answers nothing, and its clients time
# out). The order ranks the errors (`Findings.telling`) and classifies a line.
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
        "a configuration error",
        re.compile(
            r"(?i)invalid (config|configuration|value|setting)|missing (env|config|setting|key)"
            r"|unknown (option|flag|key)|parse error|keyerror"
        ),
        "Restore the last known-good configuration and restart the affected service.",
        "Validate configuration in CI and at start-up, and roll it out progressively like code.",
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
    """What the rules found; `leads()` says it in lines.

    `onset` is when the trouble began: the first metric to move near the alert, else the
    alert's start. The incident's errors are those seen from `BEFORE_ONSET` before it to
    `AFTER_ALERT` after the alert (a login that failed a few times an hour earlier is not this
    incident's). Of those, `first_error` is the earliest to start in that time and `telling`
    the one that says most (its category comes first in `CATEGORIES`; a fatal one first
    within it). `change` is the latest change
    before the first error; `change_linked` says whether anything ties it to what failed: a
    deploy of the alert's own service, or a change and an error that name the same thing."""

    starts_at: datetime
    onset: datetime
    signatures: list[Signature]
    total_errors: int
    first_error: LogLine | None
    telling: Signature | None
    change: LogLine | None
    change_linked: bool
    shifted: list[MetricReading]
    category: Category | None
    failed: list[SourceReport]

    @property
    def top(self) -> Signature | None:
        return self.telling

    def leads(self) -> list[Lead]:
        """The findings as numbered leads, earliest cause first: the change, the first error,
        the most telling error when it is another one, the metric that moved first, the
        sources that failed (which say what the evidence is missing). Short: the model reads
        the cited lines themselves."""
        leads: list[Lead] = []
        first, change, telling = self.first_error, self.change, self.telling
        if change is not None:
            anchor = first.timestamp if first is not None else self.starts_at
            gap = duration(abs(as_utc(anchor) - when(change))) if anchor else "shortly"
            before = "the first error" if first is not None else "the alert"
            link = "" if self.change_linked else " (nothing in it names what failed)"
            text = f"A change {gap} before {before}{link}: {quote(change.text)}"
            kind = "change" if self.change_linked else "unlinked_change"
            leads.append(self._lead(kind, text, [change]))
        if first is not None:
            category = category_of(first.text)
            kind = f", like {category.name}" if category else ""
            text = f"The first error of the incident{kind}: {quote(first.text)}"
            leads.append(self._lead("first_error", text, [first]))
        if telling is not None and (first is None or first not in telling.lines):
            kind = self.category.name if self.category else "an error"
            text = f"The most telling error ({kind}, {telling.count}x): {quote(telling.text)}"
            leads.append(self._lead("telling_error", text, [telling.first]))
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

    def _lead(self, kind: str, text: str, lines: list[LogLine]) -> Lead:
        at = lines[0].timestamp
        moment = f" at {clock(at, self.starts_at)}" if at is not None else ""
        return Lead(number=0, kind=kind, text=text + moment, refs=[x.ref for x in lines], at=at)

    def _metrics_lead(self) -> Lead:
        """The metric that moved first (what moved first is nearer the cause than what
        followed), and when the others followed."""
        first, *others = self.shifted
        text = (
            f"{describe_metric(first)} moved first: it {direction(first, peak=False)} at "
            f"{clock(first.changed_at, self.starts_at)}"
        )
        if others:
            text += "; then " + _refs_by_time(others[:4], self.starts_at)
        return Lead(number=0, kind="metric", text=text, refs=[first.ref], at=first.changed_at)


def _refs_by_time(readings: Sequence[MetricReading], day: datetime) -> str:
    """`M1, M2 at 10:01:02; M4 at 10:03:00`: the readings grouped by when they changed."""
    groups: dict[str, list[str]] = {}
    for reading in readings:
        groups.setdefault(clock(reading.changed_at, day), []).append(reading.ref)
    return "; ".join(f"{', '.join(refs)} at {moment}" for moment, refs in groups.items())


def find(alert: AlertContext, evidence: Evidence) -> Findings:
    """The findings over the evidence, the clusters' findings read as log lines (only a
    rollout may be the change: a restart count is a symptom)."""
    symptoms = {f.ref for f in evidence.kubernetes if f.kind != "rollout"}
    logs = [*evidence.logs, *(f.as_log_line() for f in evidence.kubernetes)]
    starts_at = as_utc(alert.starts_at)
    signatures, total = _group_errors(logs)
    onset = _onset(evidence.metrics, starts_at)
    begins, ends = onset - BEFORE_ONSET, max(onset, starts_at) + AFTER_ALERT
    incident = [s for s in signatures if _overlaps(s, begins, ends)] or signatures
    started = [s.first for s in incident if begins <= when(s.first) <= ends]
    first_error = min(started or [s.first for s in incident], key=when) if incident else None
    telling = min(incident, key=_telling) if incident else None
    anchors = [starts_at] + ([when(first_error)] if first_error is not None else [])
    shifted = _shifted_metrics(evidence.metrics, anchors)
    anchor = when(first_error) if first_error is not None else starts_at
    change = _find_change([line for line in logs if line.ref not in symptoms], anchor)
    return Findings(
        starts_at=starts_at,
        onset=onset,
        signatures=signatures,
        total_errors=total,
        first_error=first_error,
        telling=telling,
        change=change,
        change_linked=change is not None
        and _linked(
            change, [s.text for s in incident if s is telling or first_error in s.lines], alert
        ),
        shifted=shifted,
        category=category_of(telling.text) if telling is not None else None,
        failed=[r for r in evidence.reports if r.error],
    )


def category_of(text: str) -> Category | None:
    """The most specific category the line falls in, if any."""
    return next((c for c in CATEGORIES if c.pattern.search(text)), None)


# -------------------------------------------------------------------------------- wording


_NEVER = datetime.max.replace(tzinfo=UTC)


def when(line: LogLine) -> datetime:
    return as_utc(line.timestamp) if line.timestamp is not None else _NEVER


def clock(moment: datetime | None, day: datetime | None = None) -> str:
    """`HH:MM:SS UTC`, with the date when it is not `day`'s (yesterday's Job is not today's)."""
    if moment is None:
        return "an unknown time"
    utc = as_utc(moment).astimezone(UTC)
    if day is not None and utc.date() != as_utc(day).astimezone(UTC).date():
        return utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    return utc.strftime("%H:%M:%S UTC")


def excerpt(text: str, limit: int = _EXCERPT) -> str:
    return truncate(" ".join(text.split()), limit)


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
    """A line as a lead quotes it: without its timestamp, cut short around what it says is
    wrong (its category's words), so "x509: certificate has expired" survives the cut."""
    return f'"{excerpt_around(without_stamp(text), limit)}"'


def excerpt_around(text: str, limit: int = _EXCERPT) -> str:
    """`text` in at most `limit` characters, keeping its start and the last words that say
    what is wrong (its category's last match) when those lie beyond the cut."""
    text = " ".join(text.split())
    category = category_of(text)
    matches = list(category.pattern.finditer(text)) if category else []
    if len(text) <= limit or not matches or matches[-1].end() <= limit - 1:
        return truncate(text, limit)
    head = truncate(text, limit // 3)
    room = limit - len(head) - 1
    start = max(matches[-1].start() - room // 4, len(head))
    return f"{head} {truncate(text[start:], room)}"


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


BEFORE_ONSET = timedelta(minutes=10)
_FATAL = re.compile(r"(?i)\b(?:fatal|panic|oomkilled|killed|crash|aborted|exit code [1-9])")
_DEPLOY = re.compile(r"(?i)deploy|rollout|rolled out|rolling update|release|upgrad|new version")


AFTER_ALERT = timedelta(minutes=5)
ONSET_LOOKBACK = timedelta(minutes=30)  # an alert may fire long after its cause (`for:`)


def _onset(metrics: Iterable[MetricReading], starts_at: datetime) -> datetime:
    """When the trouble began: the earliest change point of a metric in the half hour before
    the alert (a `KubeJobFailed` fires many minutes after the Job failed), else the alert."""
    points = [
        as_utc(m.changed_at)
        for m in metrics
        if m.changed_at is not None
        and m.baseline is not None
        and starts_at - ONSET_LOOKBACK <= as_utc(m.changed_at) <= starts_at
    ]
    return min([starts_at, *points])


def _overlaps(signature: Signature, begins: datetime, ends: datetime) -> bool:
    """Whether the signature occurred between `begins` and `ends` (first seen before, still
    seen after counts: a bug a few users hit before the flag went to everyone)."""
    first = when(signature.first)
    last = max(as_utc(line.last or line.timestamp or first) for line in signature.lines)
    return first <= ends and last >= begins


def _telling(signature: Signature) -> tuple[int, int, datetime]:
    """How much a signature says (lower first): its category's place in `CATEGORIES` (none
    last), fatal before the rest, then the earliest."""
    category = category_of(signature.text)
    rank = CATEGORIES.index(category) if category is not None else len(CATEGORIES)
    return rank, 0 if _FATAL.search(signature.text) else 1, when(signature.first)


def _linked(change: LogLine, errors: Sequence[str], alert: AlertContext) -> bool:
    """Whether a change is tied to what failed (`errors`: the incident's first and most
    telling ones): a deploy that names the alert's own service, or a change and an error that
    name the same thing beyond the service's own name (a carrier rate table reloaded says
    nothing about an expired certificate)."""
    service = {value.lower() for key, value in alert.labels.items() if key in _SERVICE_LABELS}
    if _DEPLOY.search(change.text) and service & _names(change.text):
        return True
    ignored = _LOG_WORDS | {word for name in service for word in _words(name)}
    changed = _words(change.text) - ignored
    return any(changed & _words(text) for text in errors)


_SERVICE_LABELS = ("service", "app", "application", "deployment", "job", "container")
_LOG_WORDS = frozenset(
    "info warn warning error debug log fatal panic trace notice the and for with from to of "
    "in on at by is was are were not http https status".split()
)
_TOKEN = re.compile(r"[a-z0-9][a-z0-9_.-]*[a-z0-9]")


def _names(text: str) -> set[str]:
    """The names a line uses, whole (`checkout-web`, `payment-service`)."""
    return set(_TOKEN.findall(text.lower()))


def _words(text: str) -> set[str]:
    """The words a line uses: names and their parts (`new-pricing-engine` gives `pricing`,
    `PricingEngine.quote` gives `engine`), without numbers and timestamps."""
    split = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", without_stamp(text))
    words = set()
    for name in _names(split):
        for part in (name, *re.split(r"[_.-]", name)):
            if len(part) >= 4 and not part[:1].isdigit():
                words.add(part)
    return words
