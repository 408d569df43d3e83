"""Short metric names: whole PromQL expressions read as the metric and its telling labels."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

import pytest

from firebreak.tools.evidence import format_metric
from firebreak.tools.models import MetricReading
from firebreak.tools.promql import (
    alert_expression,
    metric_reading_text,
    series_selector,
    short_metric,
    strip_threshold,
)

RATIO = (
    'sum(rate(http_requests_total{service="checkout",code=~"5.."}[5m])) / '
    'sum(rate(http_requests_total{service="checkout"}[5m]))'
)
POOL = 'connection_pool_in_use{service="checkout"}'
POOL_SERIES = {"pool": "payment-gateway", "service": "checkout", "instance": "web-1:8080"}


@pytest.mark.parametrize(
    ("expr", "series", "short"),
    [
        (RATIO, {}, 'http_requests_total{code=~"5.."}'),
        (RATIO, {"service": "checkout"}, 'http_requests_total{code=~"5.."}'),
        (POOL, POOL_SERIES, 'connection_pool_in_use{pool="payment-gateway",service="checkout"}'),
        (
            'histogram_quantile(0.99, sum by (le) (rate(latency_seconds_bucket{svc="a"}[5m])))',
            {},
            'p99 latency_seconds{svc="a"}',
        ),
        ('rate(errors_total{code=~"5.."}[1m])', {"code": "503"}, 'errors_total{code="503"}'),
        ('{__name__="up", job="api"}', {}, 'up{job="api"}'),
        ("up", {"job": "node", "instance": "h:9100"}, "up"),  # scrape labels say nothing
        ('up{instance="h:9100"}', {"instance": "h:9100"}, 'up{instance="h:9100"}'),
        ("vector(1)", {}, "vector(1)"),  # no metric: as it came
        ("not (promql", {}, "not (promql"),
    ],
)
def test_short_metric(expr: str, series: dict[str, str], short: str) -> None:
    assert short_metric(expr, series) == short


def test_label_values_are_quoted_like_promql() -> None:
    assert short_metric('x{path="/a\\"b"}') == 'x{path="/a\\"b"}'


def test_series_selector_says_the_labels_once() -> None:
    assert series_selector(POOL, {"pool": "p", "service": "checkout"}) == (
        'connection_pool_in_use{pool="p",service="checkout"}'
    )
    assert series_selector("up") == "up"
    assert series_selector(RATIO, {"service": "checkout"}) == RATIO + ' {service="checkout"}'
    assert series_selector("x offset 5m", {"a": "b"}) == 'x offset 5m {a="b"}'  # kept whole


def test_format_metric_does_not_double_the_labels() -> None:
    reading = MetricReading(
        ref="M3",
        source="prometheus",
        query=POOL,
        series={"pool": "payment-gateway", "service": "checkout"},
        baseline=5.1,
        current=10,
        peak=10,
        changed_at=datetime(2026, 11, 22, 9, 55, tzinfo=UTC),
        points=300,
    )
    line = format_metric(reading)
    assert line.startswith(
        '[M3] prometheus: connection_pool_in_use{pool="payment-gateway",service="checkout"} '
        "baseline=5.1"
    )
    assert "}{" not in line


def test_stored_evidence_lines_are_shortened() -> None:
    stored = (
        'connection_pool_in_use{service="checkout"}{pool=payment-gateway,service=checkout} '
        "baseline=5.1 current=10 peak=10"
    )
    assert metric_reading_text(stored) == (
        'connection_pool_in_use{pool="payment-gateway",service="checkout"} '
        "baseline=5.1 current=10 peak=10"
    )
    assert metric_reading_text(RATIO + "{} baseline=0.002 current=0.25") == (
        'http_requests_total{code=~"5.."} baseline=0.002 current=0.25'
    )
    assert metric_reading_text("db_pool_in_use 50") == "db_pool_in_use 50"


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("rate(errors_total[5m]) > 0.5", "rate(errors_total[5m])"),
        (
            'sum by (svc) (rate(x{code=~"5..", a!="b"}[1m])) >= bool 1e3',
            'sum by (svc) (rate(x{code=~"5..", a!="b"}[1m]))',
        ),
        ("0.9 < histogram_quantile(0.99, rate(h[5m]))", "histogram_quantile(0.99, rate(h[5m]))"),
        ('up{job="a>b"} == 0', 'up{job="a>b"}'),
        ("a > b", "a > b"),  # no numeric threshold: keep the expression as it is
        ("absent(up)", "absent(up)"),
    ],
)
def test_strip_threshold(expr: str, expected: str) -> None:
    assert strip_threshold(expr) == expected


def test_alert_expression_from_generator_url() -> None:
    url = (
        "http://prom-0.internal:9090/graph?g0.expr=" + quote('rate(x{a="b"}[5m]) > 1') + "&g0.tab=1"
    )
    assert alert_expression(url) == 'rate(x{a="b"}[5m]) > 1'
    assert alert_expression("") is None
    assert alert_expression("http://prom/graph?g0.tab=1") is None
