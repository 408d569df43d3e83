"""Prometheus source against a REAL Prometheus scraping a test exporter, plus the maths."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from firebreak.tools.breaker import Breaker, BreakerConfig
from firebreak.tools.config import InvestigationConfig
from firebreak.tools.evidence import format_metric
from firebreak.tools.models import AlertContext, MetricReading
from firebreak.tools.prometheus import (
    MAX_POINTS,
    MAX_SAMPLES,
    MAX_SERIES,
    PrometheusSource,
    choose_step,
    downsample,
    fetch_metrics,
    summarise,
)
from tests.support.promstack import Exporter, run_prometheus, serve_metrics

METRIC = "firebreak_test_latency_seconds"
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


# --- pure functions ---------------------------------------------------------------------------


def test_step_keeps_points_well_under_the_limit() -> None:
    assert choose_step(T0 - timedelta(minutes=5), T0) == 1.0
    assert choose_step(T0 - timedelta(seconds=65), T0) == 0.3  # short windows: sub-second
    for days in (1, 30, 400):
        step = choose_step(T0 - timedelta(days=days), T0)
        assert (days * 86400) / step < 1000 < MAX_POINTS


def series(values: list[float], start: datetime = T0 - timedelta(minutes=10)) -> list[list[object]]:
    return [[(start + timedelta(seconds=15 * i)).timestamp(), str(v)] for i, v in enumerate(values)]


def test_summary_finds_step_change() -> None:
    values = [1.0, 1.1, 0.9, 1.0, 1.05, 0.95] * 5 + [9.0, 9.5, 10.0, 9.8, 9.9, 10.2] * 3
    points = series(values)
    change_at = datetime.fromtimestamp(float(points[30][0]), UTC)  # type: ignore[arg-type]
    reading = summarise("p", "q", {}, points, starts_at=change_at + timedelta(seconds=30))
    assert reading.baseline == pytest.approx(1.0)
    assert reading.peak == 10.2 and reading.current == 10.2 and reading.points == len(values)
    assert reading.changed_at == change_at


def test_summary_ignores_spikes_and_old_recovered_blips_and_sees_drops() -> None:
    spike = [1.0] * 20 + [50.0] + [1.0] * 20
    reading = summarise("p", "q", {}, series(spike), starts_at=T0 - timedelta(minutes=5))
    assert reading.changed_at is None and reading.peak == 50.0

    blip_then_drop = [100.0] * 10 + [10.0] * 4 + [100.0] * 16 + [5.0] * 10  # blip, recovery, drop
    points = series(blip_then_drop)
    drop_at = datetime.fromtimestamp(float(points[30][0]), UTC)  # type: ignore[arg-type]
    reading = summarise("p", "q", {}, points, starts_at=drop_at + timedelta(seconds=20))
    assert reading.baseline == 100.0
    assert reading.changed_at == drop_at and reading.current == 5.0

    noisy = [10.0 + (i % 3) * 0.5 for i in range(40)]  # noise within MAD: no change
    assert summarise("p", "q", {}, series(noisy), starts_at=T0).changed_at is None

    born_late = summarise("p", "q", {}, series([3.0, 4.0], start=T0), starts_at=T0)
    assert born_late.baseline is None and born_late.current == 4.0

    weird = summarise("p", "q", {}, [[T0.timestamp(), "NaN"], [T0.timestamp() + 1, "+Inf"]], T0)
    assert weird.points == 0 and weird.current is None


def test_few_points_have_no_history() -> None:
    before = T0 - timedelta(minutes=5)
    reading = summarise("p", "q", {}, series([3.0, 9.0], start=before), starts_at=T0)
    assert reading.history is False  # two points before the alert are not a baseline
    assert reading.baseline is None and reading.changed_at is None
    assert (reading.current, reading.peak, reading.points) == (9.0, 9.0, 2)
    assert "no history" in format_metric(reading)
    assert summarise("p", "q", {}, series([3.0, 3.0, 9.0]), starts_at=T0).history is True


def test_samples_are_bounded_and_keep_spikes_dips_and_ends() -> None:
    values = [10.0] * 3000
    values[1234], values[2345] = 500.0, -50.0
    reading = summarise("p", "q", {}, series(values), starts_at=T0)
    assert reading.points == 3000 and len(reading.samples) == MAX_SAMPLES
    kept = [value for _, value in reading.samples]
    assert 500.0 in kept and -50.0 in kept
    points = series(values)
    assert reading.samples[0][0].timestamp() == points[0][0]
    assert reading.samples[-1][0].timestamp() == points[-1][0]
    assert [t for t, _ in reading.samples] == sorted(t for t, _ in reading.samples)
    assert downsample(reading.samples[:5]) == reading.samples[:5]
    dumped = reading.model_dump(mode="json")["samples"][0]
    assert isinstance(dumped[0], str) and dumped[1] == 10.0  # JSON: [RFC 3339, value]


# --- real Prometheus ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Exporter]]:
    with serve_metrics() as exporter:
        exporter.set(METRIC, 0.1, {"service": "checkout"})
        exporter.set(METRIC, 0.1, {"service": "cart"})
        workdir: Path = tmp_path_factory.mktemp("prom")
        with run_prometheus(workdir, scrape_targets=[exporter.target], interval="250ms") as url:
            yield url, exporter


def _samples(url: str, selector: str) -> int:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": f"count_over_time({selector}[5m])"})
    result = answer.json()["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def _wait_samples(url: str, selector: str, at_least: int, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while _samples(url, selector) < at_least:
        assert time.monotonic() < deadline, f"Prometheus did not scrape {selector} in time"
        time.sleep(0.1)


async def test_real_prometheus_step_change_alert_expression_and_queries(
    stack: tuple[str, Exporter],
) -> None:
    url, exporter = stack
    checkout = f'{METRIC}{{service="checkout"}}'
    _wait_samples(url, checkout, 5)  # >1 s of baseline
    before = _samples(url, checkout)
    switch_at = datetime.now(UTC)
    exporter.set(METRIC, 5.0, {"service": "checkout"})
    _wait_samples(url, checkout, before + 6)  # 1.5 s of the new level

    # The generator URL names a host that does not exist: it must never be contacted.
    generator = "http://prometheus-0.invalid:9090/graph?g0.expr=" + quote(f"{checkout} > 1")
    alert = AlertContext(
        labels={"service": "checkout"}, starts_at=switch_at, generator_url=generator
    )
    source = PrometheusSource(
        type="prometheus",
        name="prom",
        url=url,
        queries=[
            f'{METRIC}{{service="{{{{ labels.service }}}}"}}',  # the same series: asked once
            METRIC,  # every service, including the flat one
            "sum(rate(",  # malformed: reported, the others still answer
        ],
    )
    hosts: list[str] = []

    async def record(request: httpx.Request) -> None:
        hosts.append(request.url.host)

    async with httpx.AsyncClient(event_hooks={"request": [record]}) as client:
        readings, report = await fetch_metrics(
            source, alert, InvestigationConfig(lookback_s=60, lookahead_s=60), client=client
        )

    assert hosts and set(hosts) == {"127.0.0.1"}
    assert len(hosts) == 3  # alert expression + METRIC + the malformed one
    own = [r for r in readings if r.query == checkout]
    assert len(own) == 1
    reading = own[0]
    assert reading.series == {
        "__name__": METRIC,
        "instance": exporter.target,
        "job": "test",
        "service": "checkout",
    }
    assert reading.baseline == pytest.approx(0.1)
    assert reading.peak == pytest.approx(5.0) and reading.current == pytest.approx(5.0)
    assert reading.changed_at is not None
    assert (
        switch_at - timedelta(seconds=0.5) <= reading.changed_at <= switch_at + timedelta(seconds=3)
    )
    assert reading.points >= 6
    assert reading.history is True
    assert 0 < len(reading.samples) <= MAX_SAMPLES and len(reading.samples) == reading.points
    assert reading.samples[-1][1] == reading.current

    every = {r.series["service"]: r for r in readings if r.query == METRIC}
    assert set(every) == {"checkout", "cart"}
    assert every["cart"].changed_at is None and every["cart"].baseline == pytest.approx(0.1)
    assert every["checkout"].changed_at == reading.changed_at

    assert report.kind == "prometheus" and report.items == 3
    assert report.error is not None and "sum(rate(" in report.error and "bad_data" in report.error


async def test_real_prometheus_long_window_picks_a_legal_step(stack: tuple[str, Exporter]) -> None:
    url, _ = stack
    source = PrometheusSource(type="prometheus", name="prom", url=url, queries=[METRIC])
    week = InvestigationConfig(lookback_s=7 * 86400, lookahead_s=0)
    readings, report = await fetch_metrics(source, AlertContext(starts_at=datetime.now(UTC)), week)
    assert report.error is None  # a 1 s step would exceed 11,000 points and get a 400
    assert {r.series["service"] for r in readings} == {"checkout", "cart"}


async def test_series_are_bounded_most_changed_first(stack: tuple[str, Exporter]) -> None:
    url, exporter = stack
    for i in range(MAX_SERIES + 5):
        exporter.set("firebreak_test_many", float(i), {"shard": f"s{i:02d}"})
    _wait_samples(url, 'firebreak_test_many{shard="s14"}', 2)
    source = PrometheusSource(
        type="prometheus", name="prom", url=url, queries=["firebreak_test_many"]
    )
    readings, report = await fetch_metrics(
        source, AlertContext(starts_at=datetime.now(UTC)), InvestigationConfig(lookback_s=60)
    )
    assert report.error is None
    assert len(readings) == MAX_SERIES
    assert all(isinstance(r, MetricReading) for r in readings)


async def test_unreachable_prometheus_is_reported() -> None:
    source = PrometheusSource(
        type="prometheus", name="prom", url="http://127.0.0.1:9", queries=["up"]
    )
    readings, report = await fetch_metrics(source, AlertContext(starts_at=T0))
    assert readings == [] and report.error is not None and "ConnectError" in report.error


async def test_an_open_breaker_is_reported_at_once_without_a_request() -> None:
    source = PrometheusSource(
        type="prometheus", name="prom", url="http://127.0.0.1:9", queries=["up", "down"]
    )
    breaker = Breaker("prom", BreakerConfig(fail_max=2))
    readings, report = await fetch_metrics(source, AlertContext(starts_at=T0), breaker=breaker)
    assert report.error is not None and "ConnectError" in report.error  # two failed queries
    assert breaker.state == "open"

    hosts: list[str] = []

    async def record(request: httpx.Request) -> None:
        hosts.append(request.url.host)

    async with httpx.AsyncClient(event_hooks={"request": [record]}) as client:
        readings, report = await fetch_metrics(
            source, AlertContext(starts_at=T0), client=client, breaker=breaker
        )
    assert readings == [] and hosts == []
    assert report.error is not None and report.error.startswith("circuit open: prom is open")


async def test_young_series_are_read_now_with_no_history(tmp_path: Path) -> None:
    """A series born seconds ago: the 30-minute range query (7 s steps aligned to its start)
    may hold no point of it at all; the instant query at investigation time does."""
    young = "firebreak_test_young_queue_depth"
    with serve_metrics() as exporter:
        exporter.set(young, 42.0, {"service": "checkout"})
        with run_prometheus(tmp_path, scrape_targets=[exporter.target], interval="1s") as url:
            _wait_samples(url, young, 1)
            paths: list[str] = []

            async def record(request: httpx.Request) -> None:
                paths.append(request.url.path)

            generator = "http://prometheus.invalid/graph?g0.expr=" + quote(f"{young} > 10")
            alert = AlertContext(
                labels={"service": "checkout"}, starts_at=datetime.now(UTC), generator_url=generator
            )
            source = PrometheusSource(type="prometheus", name="prom", url=url)
            async with httpx.AsyncClient(event_hooks={"request": [record]}) as client:
                readings, report = await fetch_metrics(source, alert, client=client)

    assert report.error is None, report.error
    assert paths == ["/api/v1/query_range", "/api/v1/query"]
    assert len(readings) == 1
    reading = readings[0]
    assert reading.query == young and reading.series["service"] == "checkout"
    assert reading.history is False
    assert reading.current == 42.0 and reading.peak == 42.0 and reading.baseline is None
    assert 1 <= reading.points < 3 and reading.samples[-1][1] == 42.0
    assert "no history" in format_metric(reading)
