"""The public JSON shapes of the contract: incidents, analyses, timeline events.

These pydantic models are what the API returns and what Slack cards are built from, so a
field added here shows up everywhere at once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class IncidentStatus(StrEnum):
    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class ExecutionStatus(StrEnum):
    COMPLETED = "COMPLETED"
    RECOVERED_FALLBACK = "RECOVERED_FALLBACK"
    FAILED = "FAILED"


class EventType(StrEnum):
    ALERT_RECEIVED = "ALERT_RECEIVED"
    INCIDENT_CREATED = "INCIDENT_CREATED"
    AI_ANALYSIS_STARTED = "AI_ANALYSIS_STARTED"
    EVIDENCE_COLLECTED = "EVIDENCE_COLLECTED"
    ROOT_CAUSE_GENERATED = "ROOT_CAUSE_GENERATED"
    AI_ANALYSIS_FAILED = "AI_ANALYSIS_FAILED"
    # A run cut short because the store failed under it, resumed from its checkpoint once the
    # store took writes again: once per run, whatever the number of retries.
    AI_ANALYSIS_RETRIED = "AI_ANALYSIS_RETRIED"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    ESCALATED = "ESCALATED"
    RESOLVED = "RESOLVED"
    REOPENED = "REOPENED"
    NOTE = "NOTE"
    REMEDIATION_PROPOSED = "REMEDIATION_PROPOSED"
    REMEDIATION_APPROVED = "REMEDIATION_APPROVED"
    REMEDIATION_REJECTED = "REMEDIATION_REJECTED"
    REMEDIATION_EXECUTED = "REMEDIATION_EXECUTED"
    REMEDIATION_VERIFIED = "REMEDIATION_VERIFIED"
    REMINDER = "REMINDER"
    TOOL_CALLED = "TOOL_CALLED"
    SILENCED = "SILENCED"
    UNSILENCED = "UNSILENCED"
    POSTMORTEM_DRAFTED = "POSTMORTEM_DRAFTED"
    FEEDBACK = "FEEDBACK"


class Verdict(StrEnum):
    """What a person says of an analysis."""

    CORRECT = "correct"
    WRONG = "wrong"


class Feedback(BaseModel):
    """The latest verdict on an analysis: who said whether it was right, and when. With
    `wrong`, `actual_cause` is the cause the person found; with `correct` it may add a word."""

    verdict: Verdict
    actual_cause: str | None = None
    by: str
    at: datetime


class RemediationParameter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    value: str


class RemediationProposal(BaseModel):
    """An allowlisted action the reasoning agent suggests; it runs only after approval."""

    model_config = ConfigDict(extra="forbid")

    action: str = Field(description="name of an action from the allowlist")
    parameters: list[RemediationParameter] = Field(description="values for its parameters")
    reason: str = Field(description="why this action should help")

    def digest(self) -> str:
        """What names the proposal a person is shown: its action and parameters (the reason is
        prose and does not change what runs). An approval carries it, so it approves exactly
        what it was shown."""
        shown = [self.action, [[p.name, p.value] for p in self.parameters]]
        encoded = json.dumps(shown, separators=(",", ":"), ensure_ascii=False).encode()
        return hashlib.sha256(encoded).hexdigest()[:32]


class RcaBody(BaseModel):
    """The fields every root-cause analysis has, however it was produced."""

    root_cause: str = Field(min_length=1, max_length=2000)
    reasoning: str = Field(min_length=1, max_length=4000)
    mitigation: str = Field(min_length=1, max_length=2000)
    prevention: str = Field(min_length=1, max_length=2000)
    recommendation: str = Field(min_length=1, max_length=2000)
    confidence_score: int = Field(ge=0, le=100)
    remediation: RemediationProposal | None = None


class LineReading(BaseModel):
    """A log line or cluster finding as it was read: when, how often, where, what it said."""

    line: str  # what it said, without the time and count the item's text puts before it
    timestamp: datetime | None = None
    count: int = 1  # how many lines collapsed into this one
    object: str = ""  # a cluster finding's object (`pod/checkout-7d9f`); empty for log lines


class MetricSummary(BaseModel):
    """A metric reading as it was summarised: the query, its series' labels, the numbers."""

    query: str
    labels: dict[str, str] = {}  # the series' labels
    baseline: float | None = None
    current: float | None = None
    peak: float | None = None
    changed_at: datetime | None = None  # the change point, if one was found
    points: int = 0


class EvidenceItem(BaseModel):
    """A log line, metric reading or cluster finding an analysis rests on, resolved from its
    ref. `text` is what people and the model read; `line` (logs, cluster findings) and
    `metric` (metric readings) keep the same reading structured, so no reader takes the text
    apart again. Both are None in analyses stored before they were kept, and for history."""

    ref: str
    kind: Literal["log", "metric", "kubernetes", "history"]
    source: str
    text: str
    line: LineReading | None = None
    metric: MetricSummary | None = None


class HistoryRef(BaseModel):
    """An earlier incident like this one, as the reasoning agent saw it (ref `H1`…): its root
    cause and how it ended. Facts from the store, never from the model."""

    ref: str
    incident_id: int
    title: str
    created_at: datetime
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    root_cause: str | None = None
    resolution: str | None = None  # what fixed it: a remediation run, or a resolution note
    score: float = 0.0
    # A person's verdict on its analysis: True confirmed, False corrected (`root_cause` is then
    # the cause the person gave, not the analysis's), None nobody said.
    confirmed: bool | None = None

    @property
    def resolve_s(self) -> float | None:
        if self.resolved_at is None:
            return None
        return (self.resolved_at - self.created_at).total_seconds()


class RelatedIncident(BaseModel):
    """One item of `GET /api/v1/incidents/{id}/related` (`similar` and `concurrent`)."""

    id: int
    title: str
    status: IncidentStatus
    created_at: datetime
    resolved_at: datetime | None
    score: float
    root_cause: str | None
    resolved_by: str | None


class Attempt(BaseModel):
    number: int
    provider: str
    ok: bool
    error: str | None = None
    elapsed_ms: float = 0.0
    constrained: bool | None = None  # asked with the JSON schema enforced by the server
    prompt_tokens: int | None = None  # as the server counted them


class Lead(BaseModel):
    """A deterministic finding (agents/leads.py): shown to the model, kept with the analysis,
    the same ones the offline analyzer writes from."""

    number: int
    kind: str  # change | first_error | dominant_error | metric | source_failed
    text: str
    refs: list[str] = []
    at: datetime | None = None


class SetAside(BaseModel):
    """The model's answer that was not used, and why (it cited no gathered evidence, or the
    evidence it cited does not speak of what it named)."""

    root_cause: str
    confidence_score: int
    why: str


class GroundingReport(BaseModel):
    """How the answer held up against the evidence (agents/grounding.py): the refs it cited
    that exist, the ones it invented, whether the cited evidence speaks of its cause
    (`supported`, `no_evidence`, `symptom`, `unrelated`), and the numbers of the leads that
    could be compared with it and of those that agree."""

    cited: list[str] = []
    invented: list[str] = []
    support: str = "supported"
    comparable: list[int] = []
    agreeing: list[int] = []


class Analysis(RcaBody):
    execution_status: ExecutionStatus
    attempts: list[Attempt] = []
    evidence: list[EvidenceItem] = []
    provider: str = "offline"
    model: str = ""
    created_at: datetime | None = None
    tool_calls: int = 0  # follow-up queries the reasoning agent made before answering
    history: list[HistoryRef] = []  # earlier incidents like this one, given as `H1`…
    leads: list[Lead] = []  # the deterministic findings the model was shown
    prompt_tokens: int | None = None  # the RCA prompt, as the server (or the estimate) counted
    set_aside: SetAside | None = None  # the model's answer, when it could not be used
    dissent: str | None = None  # the offline root cause, when the model contradicts every lead
    grounding: GroundingReport | None = None  # how the model's answer held up (None: none came)
    # Read from the store with the analysis, never stored in its body: the investigation run
    # that made it (None for one stored without a run) and the latest verdict on it.
    run_id: str | None = None
    feedback: Feedback | None = None


class SlackRef(BaseModel):
    channel: str | None = None
    ts: str | None = None


class AlertOut(BaseModel):
    fingerprint: str
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str


class AlertFacts(BaseModel):
    """What an investigation is told about the alert it looks into (the query templates'
    `labels`, `annotations`, `starts_at`, `ends_at`): one rule for a live investigation and a
    replayed one (store/feedback.py `resolved_cases`)."""

    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    starts_at: datetime
    ends_at: datetime | None = None
    generator_url: str = ""


class IncidentOut(BaseModel):
    id: int
    title: str
    status: IncidentStatus
    severity: str
    service: str
    labels: dict[str, str]
    group_key: str | None
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    alert_count: int
    truncated_alerts: int
    escalation_level: int
    slack: SlackRef
    analysis: Analysis | None = None
    alerts: list[AlertOut] = []
    related: list[int] = []  # incidents correlated with this one (`correlation`), by id

    def shown(self, scrub: Callable[[Any], Any]) -> IncidentOut:
        """The incident as people read it (cards, pages, the API, postmortems): its label
        values, and the group key, service and severity spelt from them, through `scrub` (the
        redactor's `redact_value`: values under a secret's name are dropped whole). The stored
        labels stay as they came: grouping, routing, correlation and silences match them."""
        return self.model_copy(
            update={
                "labels": scrub(dict(self.labels)),
                "group_key": scrub(self.group_key),
                "service": scrub(self.service),
                "severity": scrub(self.severity),
                "alerts": [
                    alert.model_copy(update={"labels": scrub(dict(alert.labels))})
                    for alert in self.alerts
                ],
            }
        )

    @property
    def started_at(self) -> datetime:
        """When the incident began: its earliest alert's `startsAt`, else when it was opened
        (declared by hand). Card, page, chart and CLI all say this one time."""
        starts = [a.starts_at for a in self.alerts if a.starts_at is not None]
        return (
            min(starts, key=lambda at: at.replace(tzinfo=at.tzinfo or UTC))
            if starts
            else self.created_at
        )

    def alert_facts(self) -> AlertFacts:
        """The earliest firing alert speaks for the incident; the group's common labels fill
        in what it lacks. A declared incident (no alerts) is told from its creation time."""
        alerts = sorted(self.alerts, key=lambda a: (a.status != "firing", a.starts_at))
        if not alerts:
            return AlertFacts(
                labels={"service": self.service, **self.labels},
                annotations={"summary": self.title},
                starts_at=self.created_at,
            )
        first = alerts[0]
        return AlertFacts(
            labels={**self.labels, **first.labels},
            annotations=first.annotations,
            starts_at=first.starts_at,
            ends_at=first.ends_at,
            generator_url=first.generator_url,
        )


class TimelineEventOut(BaseModel):
    at: datetime
    type: str
    actor: str
    message: str
    data: dict[str, Any] = {}
