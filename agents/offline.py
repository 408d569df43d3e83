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

Steps 1 to 3 are agents/leads.py's findings, the same ones the reasoning LLM is shown as its
leads: this module only writes them up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from firebreak.agents.leads import (
    Findings,
    Signature,
    clock,
    describe_metric,
    direction,
    excerpt,
    excerpt_around,
    find,
    when,
)
from firebreak.agents.schema import RootCauseAnalysis
from firebreak.store.payloads import service_of
from firebreak.tools.models import AlertContext, Evidence, LogLine, MetricReading
from firebreak.tools.text import as_utc, duration, truncate, without_stamp

__all__ = ["MAX_CONFIDENCE", "analyze_offline"]

MAX_CONFIDENCE = 80  # an offline correlation is never certain


def _confidence(findings: Findings, has_evidence: bool) -> int:
    """Grows with independent signals that agree: an error of the incident (more when it says
    what kind of failure), a change tied to it, a metric that moved. A change that nothing
    ties to what failed adds nothing: timing alone is how red herrings look."""
    if not has_evidence:
        return 5
    score = 10
    if findings.telling is not None:
        score += 25 + (5 if findings.category is not None else 0)
    if findings.change is not None and findings.change_linked:
        score += 20 if findings.first_error is not None else 10
    if findings.shifted:
        score += 15
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
    findings: Findings
    has_evidence: bool
    configured: bool  # some log or metric source was asked at all
    refs: list[str]  # evidence cited so far, in the order the text cites it

    @property
    def top(self) -> Signature | None:
        return self.findings.top

    @property
    def metric(self) -> MetricReading | None:
        return self.findings.shifted[0] if self.findings.shifted else None

    @property
    def kind(self) -> str:
        category = self.findings.category
        return category.name if category is not None else "an application error"


def analyze_offline(
    alert: AlertContext, evidence: Evidence, findings: Findings | None = None
) -> RootCauseAnalysis:
    """A grounded, cautious root-cause analysis from `evidence` alone (no LLM), written from
    the leads' findings (agents/leads.py; computed here unless given)."""
    findings = findings or find(alert, evidence)
    logs = [*evidence.logs, *(f.as_log_line() for f in evidence.kubernetes)]
    story = _Story(
        name=alert.labels.get("alertname", "the alert"),
        service=service_of(alert.labels, "the service"),
        starts_at=as_utc(alert.starts_at),
        findings=findings,
        has_evidence=bool(logs or evidence.metrics),
        configured=bool(evidence.reports or logs or evidence.metrics),
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
        f"Alert {story.name} on {story.service} started at {clock(story.starts_at)}"
        + (f" ({excerpt(summary)})." if summary else ".")
    ]
    if top is not None:
        kind = f" ({story.kind})" if findings.category is not None else ""
        facts.append(
            f'The error that says most{kind} is "{excerpt_around(top.text)}"'
            f"{_cite(refs, top.first)}: {top.count} of {findings.total_errors} error lines "
            "share this signature."
        )
        for other in [s for s in findings.signatures if s is not top][:2]:
            facts.append(
                f'Also seen: "{excerpt(other.text, 100)}"{_cite(refs, other.first)} '
                f"({other.count}x)."
            )
    if first is not None:
        lead = when(first) - story.starts_at
        relation = "before" if lead.total_seconds() <= 0 else "after"
        facts.append(
            f"The earliest error in the window is at {clock(first.timestamp, story.starts_at)}, "
            f"{duration(abs(lead))} {relation} the alert started{_cite(refs, first)}."
        )
    if change is not None:
        anchor = "the first error" if first is not None else "the alert"
        gap = (when(first) if first is not None else story.starts_at) - when(change)
        tie = "" if findings.change_linked else " Nothing in it names what failed."
        facts.append(
            f"A change event precedes {anchor} by {duration(abs(gap))}: "
            f'"{excerpt(change.text)}" at {clock(change.timestamp)}{_cite(refs, change)}.{tie}'
        )
    elif story.has_evidence:
        facts.append("No deploy, restart or configuration change was found before the errors.")
    for reading in findings.shifted[:3]:
        facts.append(
            f"{describe_metric(reading)} {direction(reading)}, changing at "
            f"{clock(reading.changed_at)}{_cite(refs, reading)}."
        )
    if story.has_evidence and not findings.shifted and evidence.metrics:
        facts.append("No collected metric changed near the alert start.")
    for report in findings.failed:
        facts.append(
            f"Source {report.source} ({report.kind}) failed: {excerpt(report.error or '')}."
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
    said = excerpt_around(without_stamp(top.text), 140) if top is not None else ""
    if top is not None and change is not None and story.findings.change_linked:
        cause = (
            f"Probably a regression introduced by the change at {clock(change.timestamp)} "
            f'("{excerpt(change.text, 100)}"): "{said}" errors followed, pointing to '
            f"{story.kind}."
        )
    elif top is not None:
        cluster = top.first.ref.startswith("K")
        who = f"the cluster reports ({top.first.source})" if cluster else f"{service} is logging"
        cause = (
            f'Most likely {story.kind}: {who} "{said}" ({top.count}x since '
            f"{clock(top.first.timestamp, story.starts_at)}), which would explain {name}."
        )
    elif change is not None:
        cause = (
            f'Possibly the change at {clock(change.timestamp)} ("{excerpt(change.text, 120)}")'
            f" shortly before {name}; no error lines confirm it."
        )
    elif metric is not None:
        return (
            f"{describe_metric(metric)} {direction(metric)} around {clock(metric.changed_at)}, "
            "but no log line explains why; the cause is not visible in the collected evidence."
        )
    else:
        return (
            f"The collected evidence shows no error, change or metric shift that explains {name}; "
            "the cause is not visible in the configured sources."
        )
    if metric is not None:
        cause += f" {describe_metric(metric)} {direction(metric)} at the same time."
    return cause


NOTHING_TO_GROUND = (
    "None proposed: with no evidence there is nothing to ground an action on. Act on what "
    "you see of {service} yourself."
)


def _mitigation(story: _Story) -> list[str]:
    """Only what a finding grounds; with no evidence at all, nothing, and it says so (a
    generic "restart it" at 5 % reads like advice it has no basis for)."""
    if not story.has_evidence:
        return [NOTHING_TO_GROUND.format(service=story.service)]
    change, category = story.findings.change, story.findings.category
    parts: list[str] = []
    if change is not None:
        parts.append(
            f"Roll back or revert the change at {clock(change.timestamp)} and watch whether the "
            "errors stop."
        )
    if category is not None:
        parts.append(category.mitigation)
    return parts or [
        f"Check {story.service}'s recent deploys, configuration changes and dependencies, and "
        "restart or scale it if it is unhealthy while the cause is investigated."
    ]


def _prevention(story: _Story) -> list[str]:
    if not story.configured:
        return [
            f"Give Firebreak {story.service}'s logs and metrics (sources.logs, sources.metrics), "
            "so the next occurrence leaves evidence to analyse."
        ]
    if not story.has_evidence:
        return [
            f"Make the configured sources cover {story.service} (query templates and labels), "
            "so the next occurrence leaves evidence to analyse."
        ]
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
