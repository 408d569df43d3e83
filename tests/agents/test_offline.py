"""The offline analyzer draws grounded, appropriately cautious conclusions from evidence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from firebreak.agents.offline import MAX_CONFIDENCE, analyze_offline
from firebreak.agents.schema import RootCauseAnalysis
from firebreak.tools.evidence import build_evidence
from firebreak.tools.models import (
    AlertContext,
    Evidence,
    LogLine,
    MetricReading,
    SourceReport,
)
from tests.support.evidence import kube_finding

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
ALERT = AlertContext(
    labels={"alertname": "HighErrorRate", "service": "checkout", "severity": "page"},
    annotations={"summary": "5xx ratio above 5%"},
    starts_at=T0,
)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def routine() -> list[LogLine]:
    return [
        LogLine(source="loki", timestamp=at(-25 + i), text=f"GET /cart/{i} 200 {i}ms")
        for i in range(20)
    ]


def refused(n: int, start: float = -4) -> list[LogLine]:
    return [
        LogLine(
            source="loki",
            timestamp=at(start + i / 10),
            text=f"ERROR dial tcp 10.0.3.{i % 7}:5432: connect: connection refused (attempt {i})",
        )
        for i in range(n)
    ]


ERROR_METRIC = MetricReading(
    source="prom",
    query="sum(rate(http_requests_total{code=~'5..'}[1m]))",
    series={"service": "checkout"},
    baseline=0.2,
    current=14.0,
    peak=16.0,
    changed_at=at(-4),
    points=300,
)
DEPLOY = LogLine(
    source="loki", timestamp=at(-6), text="Deployment checkout rolled out version v2.4.1"
)


def evidence(logs: list[LogLine], metrics: list[MetricReading] | None = None) -> Evidence:
    return build_evidence(logs, metrics or [], [], 12_000, starts_at=T0)


def ref_of(ev: Evidence, needle: str) -> str:
    return next(line.ref for line in ev.logs if needle in line.text)


def test_deploy_then_errors_then_metric_shift_is_the_strongest_case() -> None:
    ev = evidence([*routine(), DEPLOY, *refused(40)], [ERROR_METRIC])
    rca = analyze_offline(ALERT, ev)
    assert isinstance(rca, RootCauseAnalysis)
    deploy_ref, error_ref = ref_of(ev, "rolled out"), ref_of(ev, "connection refused")
    assert set(rca.evidence) == {deploy_ref, error_ref, "M1"}
    assert rca.evidence[0] == error_ref  # the dominant error is cited first
    assert "09:54:00" in rca.root_cause and "v2.4.1" in rca.root_cause
    assert "connection refused" in rca.root_cause
    assert "unreachable" in rca.root_cause  # classified as a dependency problem
    assert "Roll back" in rca.mitigation and "09:54:00" in rca.mitigation
    assert "40 of 40" in rca.reasoning and "2 min" in rca.reasoning  # deploy precedes by 2 min
    assert "rose from 0.2 to 14" in rca.reasoning
    assert "does not prove causation" in rca.reasoning
    assert 70 <= rca.confidence_score <= MAX_CONFIDENCE < 100
    assert rca.remediation is None
    assert set(rca.evidence) <= ev.refs()  # every citation resolves


def test_errors_without_a_change_are_less_certain() -> None:
    strong = analyze_offline(ALERT, evidence([*routine(), DEPLOY, *refused(40)], [ERROR_METRIC]))
    ev = evidence([*routine(), *refused(40)])
    rca = analyze_offline(ALERT, ev)
    assert rca.confidence_score < strong.confidence_score
    assert rca.root_cause.startswith("Most likely a dependency that is unreachable or slow")
    assert "No deploy, restart or configuration change was found" in rca.reasoning
    assert "Roll back" not in rca.mitigation
    assert ref_of(ev, "connection refused") in rca.evidence


def test_dominant_signature_and_earliest_error_are_found() -> None:
    oom = [
        LogLine(
            source="app",
            timestamp=at(-2 + i / 60),
            text=f"java.lang.OutOfMemoryError: Java heap space (req {i})",
        )
        for i in range(30)
    ]
    early = LogLine(source="app", timestamp=at(-8), text="WARN GC overhead limit, error budget 80%")
    ev = evidence([*routine(), early, *oom])
    rca = analyze_offline(ALERT, ev)
    assert "OutOfMemoryError" in rca.root_cause and "memory exhaustion" in rca.root_cause
    assert "30 of 31" in rca.reasoning
    assert "earliest error in the window is at 09:52:00" in rca.reasoning
    assert ref_of(ev, "GC overhead") in rca.evidence
    assert "memory limit" in rca.mitigation


def test_metric_only_evidence_says_the_cause_is_not_visible() -> None:
    drop = MetricReading(
        source="prom",
        query="sum(rate(orders_total[5m]))",
        baseline=120.0,
        current=3.0,
        peak=121.0,
        changed_at=at(-3),
        points=200,
    )
    ev = evidence(routine(), [drop])
    rca = analyze_offline(ALERT, ev)
    assert "dropped from 120 to 3" in rca.root_cause
    assert "not visible" in rca.root_cause
    assert rca.evidence == ["M1"]
    assert rca.confidence_score < 40
    assert "lead, not a conclusion" in rca.recommendation


def test_metric_change_far_from_the_alert_is_not_blamed() -> None:
    old = ERROR_METRIC.model_copy(update={"changed_at": at(-300)})
    rca = analyze_offline(ALERT, evidence(routine(), [old]))
    assert "M1" not in rca.evidence
    assert "No collected metric changed near the alert start" in rca.reasoning


def test_empty_evidence_is_honest_and_low_confidence() -> None:
    failed = SourceReport(source="loki", kind="loki", error="HTTP 400: parse error")
    rca = analyze_offline(ALERT, Evidence(reports=[failed]))
    assert rca.confidence_score <= 10
    assert rca.evidence == []
    assert "No evidence was found" in rca.root_cause
    assert "loki" in rca.recommendation and "Fix the failing evidence sources" in rca.recommendation
    assert "HTTP 400: parse error" in rca.reasoning
    assert all(getattr(rca, f) for f in ("mitigation", "prevention", "recommendation"))


def test_deterministic_and_valid_for_a_bare_alert() -> None:
    bare = AlertContext(starts_at=datetime(2026, 11, 22, 10, 0))  # naive, no labels
    first = analyze_offline(bare, Evidence())
    assert first == analyze_offline(bare, Evidence())
    assert "the alert on the service" in first.root_cause
    RootCauseAnalysis.model_validate_json(first.model_dump_json())  # round-trips the schema


def test_no_configured_source_is_said_plainly() -> None:
    rca = analyze_offline(ALERT, Evidence())  # no source was asked: none is configured
    assert "no log or metric sources are configured" in rca.root_cause
    assert "returned nothing" not in rca.root_cause
    assert "firebreak init" in rca.recommendation


@pytest.mark.parametrize(
    "ev",
    [Evidence(), Evidence(reports=[SourceReport(source="loki", kind="loki", error=None)])],
    ids=["no-source", "sources-returned-nothing"],
)
def test_no_evidence_proposes_no_action(ev: Evidence) -> None:
    rca = analyze_offline(ALERT, ev)
    assert rca.mitigation.startswith("None proposed: with no evidence")
    assert "restart" not in rca.mitigation and "scale" not in rca.mitigation
    assert "Roll back" not in rca.mitigation
    assert rca.remediation is None and rca.evidence == []
    assert rca.confidence_score <= 10
    assert "evidence" in rca.prevention


def test_an_oom_kill_in_the_cluster_is_an_error_and_a_rollout_a_change() -> None:
    rollout = kube_finding(
        "rollout",
        "rollout: revision 7 (replicaset checkout-7d9f) created, images app=checkout:2.4.1",
        object="deployment/checkout",
        timestamp=at(-8),
        score=4.5,
    )
    oom = kube_finding(
        "pod",
        "Running, ready 0/1, 3 restarts; container app, last terminated OOMKilled (exit code 137)",
        ref="K2",
        object="pod/checkout-7d9f-abcde",
        timestamp=at(-2),
        count=3,
        score=4.2,
    )
    found = evidence(routine()).model_copy(update={"kubernetes": [rollout, oom]})
    rca = analyze_offline(ALERT, found)
    assert "memory" in rca.root_cause.lower()
    assert {"K1", "K2"} <= set(rca.evidence), "the rollout and the OOM kill are cited"
    assert "K2" in rca.reasoning


def test_without_cluster_findings_the_analysis_is_unchanged() -> None:
    found = evidence([DEPLOY, *refused(30)], [ERROR_METRIC])
    with_empty = found.model_copy(update={"kubernetes": []})
    assert analyze_offline(ALERT, found) == analyze_offline(ALERT, with_empty)


def test_whole_expressions_are_named_by_their_metric_and_telling_labels() -> None:
    ratio = MetricReading(
        source="prom",
        query=(
            'sum(rate(http_requests_total{service="checkout",code=~"5.."}[5m])) / '
            'sum(rate(http_requests_total{service="checkout"}[5m]))'
        ),
        series={"service": "checkout"},
        baseline=0.002,
        current=0.25,
        peak=0.25,
        changed_at=at(-4),
        points=300,
    )
    pool = MetricReading(
        source="prom",
        query='connection_pool_in_use{service="checkout"}',
        series={"pool": "payment-gateway", "service": "checkout", "instance": "web-1:8080"},
        baseline=5,
        current=10,
        peak=10,
        changed_at=at(-4),
        points=300,
    )
    rca = analyze_offline(ALERT, evidence([*routine(), *refused(20)], [ratio, pool]))
    prose = rca.root_cause + rca.reasoning
    assert 'http_requests_total{code=~"5.."} rose from 0.002 to 0.25' in prose
    assert 'connection_pool_in_use{pool="payment-gateway",service="checkout"} rose' in prose
    assert "sum(rate(" not in prose and "}{" not in prose
