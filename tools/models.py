"""Types the tools hand to the agents: the alert they investigate and the evidence they found.

Evidence items carry a short stable `ref` (`L3`, `M1`, `K2`) so the reasoning agent can cite
them and the grounding check can verify every citation points at something actually gathered.
`KubeFinding` lives here, beside `LogLine`, because `Evidence` holds both; the code that reads
a cluster into findings is tools/kube_objects.py.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from firebreak.tools.errors import CircuitOpenError


class AlertContext(BaseModel):
    """What query templates see: `labels`, `annotations`, `starts_at`, `ends_at`."""

    model_config = ConfigDict(frozen=True)

    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    starts_at: datetime
    ends_at: datetime | None = None
    generator_url: str = ""

    def template_vars(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "annotations": self.annotations,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
        }


class LogLine(BaseModel):
    """One (possibly de-duplicated) log line."""

    ref: str = ""
    source: str
    timestamp: datetime | None = None
    text: str
    count: int = Field(1, ge=1)  # how many lines collapsed into this one
    last: datetime | None = None  # the latest of them, when several collapsed
    score: float = 0.0  # ranking weight: errors, first occurrences, deploys score higher


class KubeFinding(BaseModel):
    """One thing the cluster said about the incident: a pod's state, a (de-duplicated) event,
    a rollout, the last lines of a crashed container."""

    ref: str = ""
    source: str  # the configured source's name
    kind: str  # pod | event | rollout | deployment | replicaset | job | node | previous_log | log
    object: str = ""  # `pod/checkout-7d9f-abcde`, `deployment/checkout`
    text: str
    timestamp: datetime | None = None
    count: int = Field(1, ge=1)
    score: float = 0.0

    def as_log_line(self) -> LogLine:
        """The finding as a log line (source `prod pod/x`), for readers that know only lines,
        such as the offline analyzer: a rollout reads as a change, an OOM kill as an error."""
        return LogLine(
            ref=self.ref,
            source=f"{self.source} {self.object}".strip(),
            timestamp=self.timestamp,
            text=self.text,
            count=self.count,
            score=self.score,
        )


class MetricReading(BaseModel):
    """A Prometheus series summarised for a reader who cannot look at a graph."""

    ref: str = ""
    source: str
    query: str
    series: dict[str, str] = {}  # the series labels
    current: float | None = None
    baseline: float | None = None  # typical value before the alert started
    peak: float | None = None
    changed_at: datetime | None = None  # the change point, if one was found
    points: int = 0
    # False when fewer than 3 points were found: a series born seconds ago, read by an instant
    # query at investigation time. `current` and `peak` hold, there is no baseline.
    history: bool = True
    # The points for a chart: at most 120 (timestamp, value) pairs, downsampled keeping peaks.
    samples: list[tuple[datetime, float]] = []


MAX_ERROR_CHARS = 500


class SourceReport(BaseModel):
    """How one source answered: counts for the timeline, the error if it failed."""

    source: str
    kind: str  # loki | elasticsearch | file | prometheus
    items: int = 0
    error: str | None = None
    elapsed_ms: float = 0.0

    def finish(self, items: int, errors: list[str], began: float) -> SourceReport:
        """Record the outcome of one fetch that started at `began` (perf_counter)."""
        self.items = items
        self.error = "; ".join(errors)[: MAX_ERROR_CHARS * 2] or None
        self.elapsed_ms = round((time.perf_counter() - began) * 1000, 1)
        return self


def describe_error(exc: BaseException, own: type[Exception]) -> str:
    """One line for the timeline about a failed source call. `own` is the client's error type,
    whose message is already written for people. Cancellation is re-raised, never reported."""
    if isinstance(exc, own | CircuitOpenError):
        return str(exc)[:MAX_ERROR_CHARS]
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, httpx.HTTPError):
        return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
    if isinstance(exc, Exception):  # malformed JSON, odd shapes: report, never crash the run
        return f"unexpected answer: {type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
    raise exc


class Evidence(BaseModel):
    logs: list[LogLine] = []
    metrics: list[MetricReading] = []
    reports: list[SourceReport] = []
    kubernetes: list[KubeFinding] = []

    def refs(self) -> set[str]:
        return (
            {line.ref for line in self.logs}
            | {reading.ref for reading in self.metrics}
            | {finding.ref for finding in self.kubernetes}
        )
