"""Evidence is de-duplicated by signature, ranked, capped by budget and numbered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from firebreak.tools.evidence import (
    build_evidence,
    format_log_line,
    format_metric,
    is_change,
    is_error,
    render_evidence,
    signature,
)
from firebreak.tools.models import Evidence, LogLine, MetricReading, SourceReport
from firebreak.tools.redact import Redactor
from tests.support.evidence import kube_finding

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_signature_collapses_variable_parts() -> None:
    a = signature(
        "2026-11-22T09:55:01.123Z ERROR req 550e8400-e29b-41d4-a716-446655440000 "
        "from 10.0.3.7:5432 took 35ms id=0x7f3a handle=deadbeef01"
    )
    b = signature(
        "2026-11-22T09:58:44.999Z ERROR req 123e4567-e89b-12d3-a456-426614174000 "
        "from 10.0.9.12:6543 took 1200ms id=0x11 handle=cafebabe99"
    )
    assert a == b
    assert a == "<TS> ERROR req <UUID> from <IP> took <N>ms id=<HEX> handle=<HEX>"
    assert signature("disk full on /var") != signature("connection refused")


def test_classifiers() -> None:
    assert is_error("java.lang.IllegalStateException: boom")
    assert is_error("upstream request TIMEOUT")
    assert is_error("Traceback (most recent call last):")
    assert not is_error("GET /health 200 1ms")
    assert is_change("Deployment checkout rolled out version v2")
    assert is_change("Started rollout of image v2.4.1")
    assert is_change("config reload complete")
    assert not is_change("GET /api/items 200")


def test_duplicates_collapse_keep_earliest_and_count() -> None:
    logs = [
        LogLine(
            source="loki", timestamp=at(-3 + i / 10), text=f"ERROR timeout calling pay after {i}ms"
        )
        for i in range(20)
    ]
    logs.insert(
        5, LogLine(source="loki", timestamp=at(-10), text="ERROR timeout calling pay after 999ms")
    )
    evidence = build_evidence(logs, [], [], 12_000)
    assert len(evidence.logs) == 1
    line = evidence.logs[0]
    assert line.count == 21
    assert line.timestamp == at(-10)
    assert line.text.endswith("999ms")  # the earliest occurrence represents the group
    assert line.ref == "L1"


def test_ranking_prefers_errors_changes_and_new_signatures_under_budget() -> None:
    routine = [
        LogLine(
            source="app",
            timestamp=at(-29 + i * 0.1),
            text=f"GET /api/items/{i} 200 {i}ms " + "x" * 120,
        )
        for i in range(200)
    ]
    routine_variants = [
        LogLine(
            source="app",
            timestamp=at(-29 + i * 0.1),
            text=f"heartbeat #{i} " + chr(97 + i % 26) * 90,
        )
        for i in range(200)
    ]
    deploy = LogLine(source="app", timestamp=at(-6), text="Deployment api rolled out version v9")
    first_error = LogLine(source="app", timestamp=at(-5), text="ERROR connection refused db:5432")
    panic = LogLine(source="app", timestamp=at(-4), text="panic: runtime error: nil pointer")
    evidence = build_evidence(
        [*routine, *routine_variants, first_error, deploy, panic], [], [], budget_chars=1_000
    )
    texts = [line.text for line in evidence.logs]
    assert deploy.text in texts and first_error.text in texts and panic.text in texts
    total = sum(len(line.text) + len(line.source) + 40 for line in evidence.logs)
    assert total <= 1_000
    assert len(evidence.logs) < 10  # the budget cut the noise
    stamps = [line.timestamp for line in evidence.logs]
    assert stamps == sorted(stamps)  # chronological within the kept set
    assert [line.ref for line in evidence.logs] == [f"L{i}" for i in range(1, len(texts) + 1)]
    scores = {line.text: line.score for line in evidence.logs}
    assert scores[panic.text] > scores[deploy.text] > 0.0  # severe error > change > routine
    assert all(score < scores[deploy.text] for text, score in scores.items() if "GET" in text)


def test_lines_near_a_metric_change_point_outrank_identical_older_ones() -> None:
    near = LogLine(source="app", timestamp=at(-1), text="WARN slow query on orders")
    far = LogLine(source="app", timestamp=at(-25), text="WARN cache miss storm")
    metric = MetricReading(
        source="prom",
        query="latency",
        baseline=0.1,
        current=2.0,
        peak=2.5,
        changed_at=at(-1),
        points=100,
    )
    evidence = build_evidence([far, near], [metric], [], 12_000)
    scores = {line.text: line.score for line in evidence.logs}
    assert scores[near.text] > scores[far.text]


def test_metrics_first_numbered_and_logs_still_get_room() -> None:
    metrics = [
        MetricReading(
            source="prom",
            query=f"q{i}",
            series={"pod": f"p{i}"},
            baseline=1.0,
            current=1.0 + i,
            peak=1.0 + i,
            changed_at=at(-2) if i > 5 else None,
            points=300,
        )
        for i in range(60)
    ]
    logs = [LogLine(source="app", timestamp=at(-2), text="ERROR upstream 503 from payments")]
    evidence = build_evidence(logs, metrics, [], budget_chars=2_000)
    assert evidence.logs and evidence.logs[0].ref == "L1"
    assert 0 < len(evidence.metrics) < 60
    assert [m.ref for m in evidence.metrics] == [
        f"M{i}" for i in range(1, len(evidence.metrics) + 1)
    ]
    changed = [m.changed_at is not None for m in evidence.metrics]
    assert changed == sorted(changed, reverse=True)  # the changed ones first...
    assert sum(changed) >= len(changed) - 1  # ...a shorter one may fill what is left
    assert sum(len(format_metric(m)) + 1 for m in evidence.metrics) <= 1_000
    assert evidence.refs() == {"L1"} | {m.ref for m in evidence.metrics}


def test_long_lines_are_truncated_and_redactor_applied_before_dedup() -> None:
    redactor = Redactor()
    logs = [
        LogLine(source="app", timestamp=at(-3), text="login failed token=aaaaaaaaaaaa1111"),
        LogLine(source="app", timestamp=at(-2), text="login failed token=bbbbbbbbbbbb2222"),
        LogLine(source="app", timestamp=at(-1), text="E" * 5000),
    ]
    reports = [SourceReport(source="es", kind="elasticsearch", error="http://u:topsecret@es")]
    found = redactor.redact_evidence(Evidence(logs=logs, reports=reports))  # as join_evidence does
    evidence = build_evidence(found.logs, [], found.reports, 12_000)
    assert len(evidence.logs) == 2
    login = evidence.logs[0]
    assert login.count == 2 and "aaaa" not in login.text and "[REDACTED]" in login.text
    assert len(evidence.logs[1].text) <= 600
    assert evidence.reports[0].error == "http://u:[REDACTED]@es"


def test_rendering_is_readable() -> None:
    line = LogLine(ref="L2", source="loki", timestamp=at(-5), text="ERROR boom", count=4)
    assert format_log_line(line) == "[L2] 2026-11-22T09:55:00Z loki (x4): ERROR boom"
    metric = MetricReading(
        ref="M1",
        source="prom",
        query="up",
        series={"job": "api"},
        baseline=1,
        current=0,
        peak=1,
        changed_at=at(-1),
        points=10,
    )
    assert format_metric(metric) == (
        '[M1] prom: up{job="api"} baseline=1 current=0 peak=1, changed at 2026-11-22T09:59:00Z '
        "(10 points)"
    )
    empty = build_evidence(
        [], [], [SourceReport(source="loki", kind="loki", error="HTTP 400")], 1000
    )
    assert render_evidence(empty) == "(source loki failed: HTTP 400)"


def test_render_evidence_shows_cluster_findings_with_their_refs() -> None:
    finding = kube_finding(
        "pod",
        "last terminated OOMKilled (exit code 137)",
        timestamp=datetime(2026, 12, 1, 9, 59, tzinfo=UTC),
        count=3,
    )
    text = render_evidence(Evidence(kubernetes=[finding]))
    assert text == (
        "[K1] 2026-12-01T09:59:00Z prod pod/checkout-1 (x3): "
        "last terminated OOMKilled (exit code 137)"
    )
