"""Summarise the metrics around an alert from Prometheus (`/api/v1/query_range`).

What is queried:
- the alert's own expression, taken from the `g0.expr` parameter of its `generator_url`. It is
  always sent to the CONFIGURED Prometheus: the generator URL's host is often an internal name
  (or attacker-chosen, since anyone able to post an alert chooses it), so it is never
  contacted. A threshold comparison (`expr > 0.5`) is stripped, because the filtered series
  only has points while the alert fires and so hides the "before";
- the source's own `queries`, rendered as templates with the alert's labels.

Each series becomes a `MetricReading` a reader can use without a graph: current value,
baseline (median before the alert started), peak, and a robust change point, plus up to
`MAX_SAMPLES` of its points for a chart. The step is derived from the window so a series has
about `TARGET_POINTS` points (Prometheus refuses more than 11,000), and at most `MAX_SERIES`
series per query are kept, the most telling first (`evidence.metric_interest`).

Young series: a range query on a series born seconds ago can return no point at all (its
steps are aligned to `start`, and the only evaluation inside the series' life may fall before
its first sample). So when a query's range answer has fewer than `MIN_HISTORY_POINTS` points
for a series (or no series), an instant query at investigation time is sent too, and its value
becomes the reading's `current` with `history=False`: no baseline, but the alert's own
expression yields a reading whenever Prometheus has the series at all.

Every query goes through the source's circuit breaker (tools/fetching.py).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from pydantic import Field

from firebreak.tools.breaker import SOURCE_BREAKER, Breaker, BreakerConfig
from firebreak.tools.config import InvestigationConfig, Section
from firebreak.tools.errors import Category, SourceError
from firebreak.tools.evidence import metric_interest
from firebreak.tools.fetching import (
    HttpSource,
    Query,
    SourceFetch,
    lent_client,
    safe_url,
    status_error,
)
from firebreak.tools.models import MAX_ERROR_CHARS, AlertContext, MetricReading, SourceReport
from firebreak.tools.promql import alert_expression, strip_threshold
from firebreak.tools.templating import alert_window

__all__ = [
    "MAX_SAMPLES",
    "MAX_SERIES",
    "MIN_HISTORY_POINTS",
    "PrometheusError",
    "PrometheusMetrics",
    "PrometheusSource",
    "choose_step",
    "downsample",
    "fetch_metrics",
    "query_instant",
    "query_range",
    "summarise",
]

TARGET_POINTS = 300
MAX_POINTS = 11_000  # Prometheus' hard limit per series
MAX_SERIES = 10
MAX_SAMPLES = 120  # points kept per reading for a chart
MIN_HISTORY_POINTS = 3  # fewer, and the reading has no history: an instant query adds "now"
MAD_K = 4.0  # deviations beyond k·σ̂ (σ̂ = 1.4826·MAD) count as changed
REL_THRESHOLD = 0.2  # ...and at least 20 % away from the baseline, so flat series stay quiet
PERSIST = 3  # consecutive deviating points make a change, a single spike does not

Point = tuple[datetime, float]
Series = dict[str, Any]


class PrometheusSource(Section):
    """`sources.metrics[]` with `type: prometheus` (or anything answering its HTTP API)."""

    type: Literal["prometheus"]
    name: str
    url: str
    queries: list[str] = Field(default_factory=list)
    timeout_s: float = Field(10, gt=0)
    circuit_breaker: BreakerConfig = SOURCE_BREAKER


class PrometheusError(SourceError):
    """Prometheus refused the query; the message is its `errorType: error`."""


def choose_step(start: datetime, end: datetime, target_points: int = TARGET_POINTS) -> float:
    """About `target_points` points over the range (never 11,000): whole seconds, or tenths
    of a second for windows shorter than `target_points` seconds."""
    seconds = max((end - start).total_seconds(), 1.0)
    raw = seconds / target_points
    step = max(0.1, math.ceil(raw * 10) / 10) if raw < 1 else float(math.ceil(raw))
    while seconds / step >= MAX_POINTS:
        step += 1.0
    return step


def least_step(start: datetime, end: datetime) -> float:
    """The smallest whole-second step that keeps a series of start..end under `MAX_POINTS`
    (Prometheus refuses a range query beyond it)."""
    seconds = max((end - start).total_seconds(), 1.0)
    return float(max(1, math.ceil(seconds / (MAX_POINTS - 1))))


async def query_range(
    client: httpx.AsyncClient,
    base_url: str,
    query: str,
    *,
    start: datetime,
    end: datetime,
    step: float,
    timeout_s: float = 10.0,
) -> list[Series]:
    """One range query; the `matrix` result (`[{"metric": {...}, "values": [[t, "v"]]}]`)."""
    data = {
        "query": query,
        "start": f"{start.timestamp():.3f}",
        "end": f"{end.timestamp():.3f}",
        "step": f"{step:g}",
        "timeout": f"{timeout_s:g}s",
    }
    return await _api(client, base_url, "query_range", data, "matrix", timeout_s)


async def query_instant(
    client: httpx.AsyncClient,
    base_url: str,
    query: str,
    *,
    at: datetime,
    timeout_s: float = 10.0,
) -> list[Series]:
    """One instant query at `at`; the `vector` result (`[{"metric": {...}, "value": [t, "v"]}]`;
    a scalar answer comes back as one series without labels)."""
    data = {"query": query, "time": f"{at.timestamp():.3f}", "timeout": f"{timeout_s:g}s"}
    return await _api(client, base_url, "query", data, "vector", timeout_s)


async def _api(
    client: httpx.AsyncClient,
    base_url: str,
    endpoint: str,
    data: dict[str, str],
    expected: str,
    timeout_s: float,
) -> list[Series]:
    response = await client.post(
        f"{base_url.rstrip('/')}/api/v1/{endpoint}", data=data, timeout=timeout_s
    )
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.status_code >= 400 or not isinstance(payload, dict):
        if isinstance(payload, dict) and payload.get("error"):
            message = f"{payload.get('errorType', 'error')}: {payload['error']}"
        else:
            message = response.text.strip() or response.reason_phrase
        raise PrometheusError(
            f"HTTP {response.status_code}: {message}"[:MAX_ERROR_CHARS],
            status_code=response.status_code,
        )
    if payload.get("status") != "success":
        raise PrometheusError(str(payload.get("error") or payload)[:MAX_ERROR_CHARS])
    result = payload.get("data") or {}
    kind = result.get("resultType")
    if kind == "scalar" and expected == "vector":
        return [{"metric": {}, "value": result.get("result")}]
    if kind != expected:
        raise PrometheusError(f"expected a {expected}, got {kind}", category=Category.BAD_REQUEST)
    return list(result.get("result") or [])


def _points(values: Sequence[Sequence[Any]]) -> list[Point]:
    points = []
    for stamp, raw in values:
        value = float(raw)
        if math.isfinite(value):
            points.append((datetime.fromtimestamp(float(stamp), UTC), value))
    return points


def _change_point(
    points: list[tuple[datetime, float]], baseline: float, threshold: float, starts_at: datetime
) -> datetime | None:
    """Start of the persistent deviation that reaches the alert start (else the last one).

    A run is `PERSIST` consecutive points on the same side of the baseline by more than
    `threshold` (or at least two when the series ends). Runs that ended long before the alert are
    old, recovered blips; the run spanning or following the alert start is the change.
    """
    runs: list[tuple[int, int]] = []  # (first index, last index)
    i, n = 0, len(points)
    while i < n:
        sign = _side(points[i][1], baseline, threshold)
        if sign == 0:
            i += 1
            continue
        j = i
        while j + 1 < n and _side(points[j + 1][1], baseline, threshold) == sign:
            j += 1
        length = j - i + 1
        if length >= PERSIST or (j == n - 1 and length >= 2):
            runs.append((i, j))
        i = j + 1
    if not runs:
        return None
    for first, last in runs:
        if points[last][0] >= starts_at:
            return points[first][0]
    return points[runs[-1][0]][0]


def _side(value: float, baseline: float, threshold: float) -> int:
    if value > baseline + threshold:
        return 1
    if value < baseline - threshold:
        return -1
    return 0


def summarise(
    source: str,
    query: str,
    series: dict[str, str],
    values: Sequence[Sequence[Any]],
    starts_at: datetime,
) -> MetricReading:
    """A series as current / baseline (median before `starts_at`) / peak / change point."""
    points = _points(values)
    return _summary(source, query, series, points, starts_at, len(points) >= MIN_HISTORY_POINTS)


def _summary(
    source: str,
    query: str,
    series: dict[str, str],
    points: list[Point],
    starts_at: datetime,
    history: bool,
) -> MetricReading:
    reading = MetricReading(
        source=source,
        query=query,
        series=series,
        points=len(points),
        history=history,
        samples=downsample(points),
    )
    if not points:
        return reading
    reading.current = points[-1][1]
    reading.peak = max(value for _, value in points)
    before = [value for moment, value in points if moment < starts_at]
    if not before or not reading.history:
        return reading  # a series born with the incident has no "normal" to compare with
    baseline = statistics.median(before)
    mad = statistics.median(abs(v - baseline) for v in before)
    threshold = max(MAD_K * 1.4826 * mad, REL_THRESHOLD * abs(baseline), 1e-9)
    reading.baseline = baseline
    reading.changed_at = _change_point(points, baseline, threshold, starts_at)
    return reading


def downsample(points: Sequence[Point], limit: int = MAX_SAMPLES) -> list[Point]:
    """At most `limit` points for a chart: the first, the last, and from each of the equal
    slices between them the point furthest from the slice's mean, so spikes and dips stay."""
    if len(points) <= limit:
        return list(points)
    inner, slots = points[1:-1], limit - 2
    kept = [points[0]]
    for slot in range(slots):
        chunk = inner[slot * len(inner) // slots : (slot + 1) * len(inner) // slots]
        if chunk:
            mean = sum(value for _, value in chunk) / len(chunk)
            kept.append(max(chunk, key=lambda point: abs(point[1] - mean)))
    kept.append(points[-1])
    return kept


def _labels(series: Series) -> dict[str, str]:
    return {str(k): str(v) for k, v in (series.get("metric") or {}).items()}


def _is_young(matrix: list[Series]) -> bool:
    """No series, or one with too few points for a history: ask for the value now as well."""
    return not matrix or any(len(s.get("values") or []) < MIN_HISTORY_POINTS for s in matrix)


def _readings(
    source: str,
    query: str,
    matrix: list[Series],
    vector: list[Series] | None,
    starts_at: datetime,
) -> list[MetricReading]:
    """Each series of the range answer summarised, the most telling first. `vector` (the
    instant answer to a young query) adds its value to the series with too few points, and
    brings the series the range query missed altogether."""
    found: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], list[Point]]] = {}
    for series in matrix:
        labels = _labels(series)
        found[tuple(sorted(labels.items()))] = (labels, _points(series.get("values") or []))
    history = {key: len(points) >= MIN_HISTORY_POINTS for key, (_, points) in found.items()}
    for series in vector or []:
        labels = _labels(series)
        key = tuple(sorted(labels.items()))
        _, points = found.get(key, (labels, []))
        now = _points([series["value"]]) if series.get("value") else []
        if history.get(key) or not now:
            continue
        if not points or now[0][0] > points[-1][0]:
            points = [*points, *now]
        found[key] = (labels, points)
    readings = [
        _summary(source, query, labels, points, starts_at, history.get(key, False))
        for key, (labels, points) in found.items()
    ]
    readings.sort(key=metric_interest, reverse=True)
    return readings


async def fetch_metrics(
    source: PrometheusSource,
    alert: AlertContext,
    investigation: InvestigationConfig | None = None,
    *,
    client: httpx.AsyncClient | None = None,
    now: datetime | None = None,
    breaker: Breaker | None = None,
) -> tuple[list[MetricReading], SourceReport]:
    """Readings for the alert's expression and the source's queries, with a timeline report.
    Every query goes through `breaker` (the source's circuit breaker) when given."""
    investigation = investigation or InvestigationConfig()
    fetch = SourceFetch(source.name, "prometheus", breaker=breaker, own_error=PrometheusError)
    if fetch.refused():
        return [], fetch.finish(0)
    now = now or datetime.now(UTC)
    start, end = alert_window(alert, investigation.lookback_s, investigation.lookahead_s)
    end = min(end, now)  # future steps would repeat the last sample
    if end <= start:  # an alert "starting" in the future (clock skew): look at a minute
        end = start + timedelta(seconds=60)
    step = choose_step(start, end)
    starts_at = alert_window(alert, 0, 0)[0]
    queries = _queries(source, alert, fetch)

    def over_range(promql: str) -> Query[list[Series]]:
        return lambda http: query_range(
            http, source.url, promql, start=start, end=end, step=step, timeout_s=source.timeout_s
        )

    def at_now(promql: str) -> Query[list[Series]]:
        return lambda http: query_instant(
            http, source.url, promql, at=now, timeout_s=source.timeout_s
        )

    async with lent_client(client, source.timeout_s) as http:
        matrices = await fetch.gather([over_range(q) for q in queries], http, labels=queries)
        young = [
            q for q, m in zip(queries, matrices, strict=True) if m is not None and _is_young(m)
        ]
        vectors = await fetch.gather([at_now(q) for q in young], http, labels=young)
    instant = dict(zip(young, vectors, strict=True))

    readings: list[MetricReading] = []
    for query, matrix in zip(queries, matrices, strict=True):
        if matrix is None:
            continue
        try:
            found = _readings(source.name, query, matrix, instant.get(query), starts_at)
        except (TypeError, ValueError, AttributeError, IndexError, KeyError) as exc:
            fetch.error(f"{query}: unexpected series shape: {exc}")
            continue
        readings.extend(found[:MAX_SERIES])
    return readings, fetch.finish(len(readings))


def _queries(source: PrometheusSource, alert: AlertContext, fetch: SourceFetch) -> list[str]:
    """The alert's own expression (threshold stripped), then the source's rendered queries."""
    queries: list[str] = []
    if expression := alert_expression(alert.generator_url):
        queries.append(strip_threshold(expression))
    for template in source.queries:
        rendered = fetch.render(template, alert)
        if rendered and rendered not in queries:
            queries.append(rendered)
    return queries


class PrometheusMetrics(HttpSource[PrometheusSource, MetricReading]):
    """A Prometheus source as a `MetricSource` (tools/sources.py): queries in PromQL."""

    kind = "prometheus"
    fetcher = fetch_metrics

    async def check(self) -> str:
        base = self.base_url
        async with self.client() as http:
            response = await http.get(base + "/api/v1/status/buildinfo")
            if response.status_code == 200:
                try:
                    version = response.json()["data"]["version"]
                except (ValueError, KeyError, TypeError):
                    version = "?"
                return f"prometheus {version} at {safe_url(base)}"
            response = await http.get(base + "/-/ready")  # Thanos, Mimir and friends
        if response.status_code == 200:
            return f"prometheus-compatible at {safe_url(base)}: ready"
        raise status_error(response, PrometheusError)

    async def query(
        self, promql: str, *, start: datetime, end: datetime, step: float, starts_at: datetime
    ) -> list[MetricReading]:
        """Each series of a range query, summarised against `starts_at` (unsorted)."""
        async with self.client() as http:
            series = await query_range(
                http, self.config.url, promql, start=start, end=end, step=step,
                timeout_s=self.config.timeout_s,
            )  # fmt: skip
        return [
            summarise(
                self.name,
                promql,
                {str(k): str(v) for k, v in (s.get("metric") or {}).items()},
                s.get("values") or [],
                starts_at,
            )
            for s in series
        ]
