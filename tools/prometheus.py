"""Summarise the metrics around an alert from Prometheus (`/api/v1/query_range`).

What is queried:
- the alert's own expression, taken from the `g0.expr` parameter of its `generator_url`. It is
  always sent to the CONFIGURED Prometheus: the generator URL's host is often an internal name
  (or attacker-chosen, since anyone able to post an alert chooses it), so it is never
  contacted. A threshold comparison (`expr > 0.5`) is stripped, because the filtered series
  only has points while the alert fires and so hides the "before";
- the source's own `queries`, rendered as templates with the alert's labels.

Each series becomes a `MetricReading` a reader can use without a graph: current value,
baseline (median before the alert started), peak, and a robust change point. The step is
derived from the window so a series has about `TARGET_POINTS` points (Prometheus refuses more
than 11,000), and at most `MAX_SERIES` series per query are kept, the most changed first.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from firebreak.tools.config import InvestigationConfig, PrometheusSource
from firebreak.tools.models import (
    MAX_ERROR_CHARS,
    AlertContext,
    MetricReading,
    SourceReport,
    describe_error,
)
from firebreak.tools.templating import QueryTemplateError, alert_window, render_query

__all__ = [
    "MAX_SERIES",
    "PrometheusError",
    "alert_expression",
    "choose_step",
    "fetch_metrics",
    "query_range",
    "strip_threshold",
    "summarise",
]

TARGET_POINTS = 300
MAX_POINTS = 11_000  # Prometheus' hard limit per series
MAX_SERIES = 10
MAD_K = 4.0  # deviations beyond k·σ̂ (σ̂ = 1.4826·MAD) count as changed
REL_THRESHOLD = 0.2  # ...and at least 20 % away from the baseline, so flat series stay quiet
PERSIST = 3  # consecutive deviating points make a change, a single spike does not
_COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")


class PrometheusError(Exception):
    """Prometheus refused the query; the message is its `errorType: error`."""


def alert_expression(generator_url: str) -> str | None:
    """The PromQL behind an alert: `g0.expr` of its generator URL (host ignored)."""
    if not generator_url:
        return None
    values = parse_qs(urlsplit(generator_url).query).get("g0.expr")
    return values[0].strip() if values and values[0].strip() else None


def _top_level_comparison(expr: str) -> tuple[int, str] | None:
    """Position and operator of the last comparison outside (), {}, [] and strings."""
    depth, quote, found = 0, "", None
    i = 0
    while i < len(expr):
        char = expr[i]
        if quote:
            if char == "\\":
                i += 2
                continue
            if char == quote:
                quote = ""
        elif char in "\"'`":
            quote = char
        elif char in "({[":
            depth += 1
        elif char in ")}]":
            depth -= 1
        elif depth == 0:
            for op in _COMPARISONS:
                if expr.startswith(op, i):
                    found = (i, op)
                    i += len(op) - 1
                    break
        i += 1
    return found


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def strip_threshold(expr: str) -> str:
    """`rate(x[5m]) > 0.5` → `rate(x[5m])` (also `0.5 < ...` and `> bool 0.5`); else as is."""
    found = _top_level_comparison(expr)
    if found is None:
        return expr
    position, op = found
    left, right = expr[:position].strip(), expr[position + len(op) :].strip()
    if right.startswith("bool "):
        right = right[5:].strip()
    if _is_number(right) and left:
        return left
    if _is_number(left) and right:
        return right
    return expr


def choose_step(start: datetime, end: datetime, target_points: int = TARGET_POINTS) -> float:
    """About `target_points` points over the range (never 11,000): whole seconds, or tenths
    of a second for windows shorter than `target_points` seconds."""
    seconds = max((end - start).total_seconds(), 1.0)
    raw = seconds / target_points
    step = max(0.1, math.ceil(raw * 10) / 10) if raw < 1 else float(math.ceil(raw))
    while seconds / step >= MAX_POINTS:
        step += 1.0
    return step


async def query_range(
    client: httpx.AsyncClient,
    base_url: str,
    query: str,
    *,
    start: datetime,
    end: datetime,
    step: float,
    timeout_s: float = 10.0,
) -> list[dict[str, Any]]:
    """One range query; the `matrix` result (`[{"metric": {...}, "values": [[t, "v"]]}]`)."""
    response = await client.post(
        base_url.rstrip("/") + "/api/v1/query_range",
        data={
            "query": query,
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": f"{step:g}",
            "timeout": f"{timeout_s:g}s",
        },
        timeout=timeout_s,
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
        raise PrometheusError(f"HTTP {response.status_code}: {message}"[:MAX_ERROR_CHARS])
    if payload.get("status") != "success":
        raise PrometheusError(str(payload.get("error") or payload)[:MAX_ERROR_CHARS])
    data = payload.get("data") or {}
    if data.get("resultType") != "matrix":
        raise PrometheusError(f"expected a matrix, got {data.get('resultType')}")
    return list(data.get("result") or [])


def _points(values: Sequence[Sequence[Any]]) -> list[tuple[datetime, float]]:
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
    reading = MetricReading(source=source, query=query, series=series, points=len(points))
    if not points:
        return reading
    reading.current = points[-1][1]
    reading.peak = max(value for _, value in points)
    before = [value for moment, value in points if moment < starts_at]
    if not before:
        return reading  # a series born with the incident has no "normal" to compare with
    baseline = statistics.median(before)
    mad = statistics.median(abs(v - baseline) for v in before)
    threshold = max(MAD_K * 1.4826 * mad, REL_THRESHOLD * abs(baseline), 1e-9)
    reading.baseline = baseline
    reading.changed_at = _change_point(points, baseline, threshold, starts_at)
    return reading


def _interest(reading: MetricReading) -> float:
    if reading.baseline is None or reading.current is None:
        return 0.0
    scale = max(abs(reading.baseline), 1e-9)
    peak = reading.peak if reading.peak is not None else reading.current
    shift = max(abs(reading.current - reading.baseline), abs(peak - reading.baseline))
    return (1e6 if reading.changed_at is not None else 0.0) + shift / scale


async def fetch_metrics(
    source: PrometheusSource,
    alert: AlertContext,
    investigation: InvestigationConfig | None = None,
    *,
    client: httpx.AsyncClient | None = None,
    now: datetime | None = None,
) -> tuple[list[MetricReading], SourceReport]:
    """Readings for the alert's expression and the source's queries, with a timeline report."""
    investigation = investigation or InvestigationConfig()
    began = time.perf_counter()
    report = SourceReport(source=source.name, kind="prometheus")
    start, end = alert_window(alert, investigation.lookback_s, investigation.lookahead_s)
    end = min(end, now or datetime.now(UTC))  # future steps would repeat the last sample
    if end <= start:  # an alert "starting" in the future (clock skew): look at a minute
        end = start + timedelta(seconds=60)
    step = choose_step(start, end)
    starts_at = alert_window(alert, 0, 0)[0]

    queries: list[str] = []
    errors: list[str] = []
    if expression := alert_expression(alert.generator_url):
        queries.append(strip_threshold(expression))
    for template in source.queries:
        try:
            rendered = render_query(template, alert)
        except QueryTemplateError as exc:
            errors.append(str(exc))
            continue
        if rendered and rendered not in queries:
            queries.append(rendered)

    owned = client is None
    http = client or httpx.AsyncClient(timeout=source.timeout_s)
    try:
        results = await asyncio.gather(
            *(
                query_range(
                    http, source.url, q, start=start, end=end, step=step, timeout_s=source.timeout_s
                )
                for q in queries
            ),
            return_exceptions=True,
        )
    finally:
        if owned:
            await http.aclose()

    readings: list[MetricReading] = []
    for query, result in zip(queries, results, strict=True):
        if isinstance(result, BaseException):
            errors.append(f"{query}: {describe_error(result, PrometheusError)}")
            continue
        summaries = []
        for series in result:
            try:
                labels = {str(k): str(v) for k, v in (series.get("metric") or {}).items()}
                summaries.append(
                    summarise(source.name, query, labels, series.get("values") or [], starts_at)
                )
            except (TypeError, ValueError, AttributeError) as exc:
                errors.append(f"{query}: unexpected series shape: {exc}")
        summaries.sort(key=_interest, reverse=True)
        readings.extend(summaries[:MAX_SERIES])
    return readings, report.finish(len(readings), errors, began)
