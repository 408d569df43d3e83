"""Fetch the log lines around an alert from Grafana Loki (`/loki/api/v1/query_range`).

Why three queries instead of one: Loki returns at most `limit` entries, newest first. On a busy
service the newest few hundred lines are routine traffic, and the lines that explain the
incident (the first error, the deploy that preceded it) are older. So besides the plain query
over the whole window, two server-side filtered queries (LogQL line filters) select error-ish
lines leading up to the alert and change events (deploy, restart, config) in the window. The
results are merged and de-duplicated; ranking and capping happen later in `evidence`.

Failures never raise: a malformed query (Loki answers 400 with its parser message), a timeout,
a refused connection or an open circuit breaker end up in `SourceReport.error` so the
investigation continues with the other sources (the shared skeleton: tools/fetching.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from pydantic import Field

from firebreak.tools.breaker import SOURCE_BREAKER, Breaker, BreakerConfig
from firebreak.tools.config import InvestigationConfig, Section
from firebreak.tools.errors import Category, SourceError
from firebreak.tools.evidence import CHANGE_FILTER, ERROR_FILTER
from firebreak.tools.fetching import (
    HttpSource,
    Query,
    SourceFetch,
    distinct,
    lent_client,
    safe_url,
    status_error,
)
from firebreak.tools.models import MAX_ERROR_CHARS, AlertContext, LogLine, SourceReport
from firebreak.tools.templating import alert_window

__all__ = ["LokiError", "LokiLogs", "LokiSource", "fetch_logs", "query_range"]

QUERY_RANGE_PATH = "/loki/api/v1/query_range"
CHANGE_LIMIT = 50  # deploy/config lines are rare; a few dozen is plenty


class LokiSource(Section):
    """`sources.logs[]` with `type: loki`."""

    type: Literal["loki"]
    name: str
    url: str
    query: str = '{service="{{ labels.service }}"}'
    limit: int = Field(200, ge=1, le=5000)
    timeout_s: float = Field(10, gt=0)
    circuit_breaker: BreakerConfig = SOURCE_BREAKER


class LokiError(SourceError):
    """Loki refused or failed the query; the message is Loki's own when it sent one."""


Entry = tuple[datetime, str, dict[str, str]]


def _ns(moment: datetime) -> str:
    return str(int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000)


def _from_ns(value: str | int) -> datetime:
    ns = int(value)
    seconds, rest = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=rest // 1000)


def _error_message(response: httpx.Response) -> str:
    """Loki answers errors as plain text; some gateways and newer versions use JSON."""
    body = response.text.strip()
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        body = str(payload.get("error") or payload.get("message") or body)
    return f"HTTP {response.status_code}: {body or response.reason_phrase}"[:MAX_ERROR_CHARS]


async def query_range(
    client: httpx.AsyncClient,
    base_url: str,
    query: str,
    *,
    start: datetime,
    end: datetime,
    limit: int,
    direction: str = "backward",
    timeout_s: float = 10.0,
) -> list[Entry]:
    """One `query_range` call: `(timestamp, line, stream labels)` tuples, unsorted.

    Raises LokiError with Loki's message on a non-2xx answer or an unexpected result type.
    """
    params = {
        "query": query,
        "start": _ns(start),
        "end": _ns(end),
        "limit": str(limit),
        "direction": direction,
    }
    response = await client.get(
        base_url.rstrip("/") + QUERY_RANGE_PATH, params=params, timeout=timeout_s
    )
    if response.status_code >= 400:
        raise LokiError(_error_message(response), status_code=response.status_code)
    payload: dict[str, Any] = response.json()
    data = payload.get("data") or {}
    if payload.get("status") not in (None, "success"):
        raise LokiError(str(payload.get("error") or payload)[:MAX_ERROR_CHARS])
    if data.get("resultType") not in (None, "streams"):
        raise LokiError(
            f"expected a log query, got a {data.get('resultType')} result: {query}",
            category=Category.BAD_REQUEST,
        )
    entries: list[Entry] = []
    for stream in data.get("result") or []:
        labels = {str(k): str(v) for k, v in (stream.get("stream") or {}).items()}
        for value in stream.get("values") or []:
            entries.append((_from_ns(value[0]), str(value[1]), labels))
    return entries


def _entry_key(entry: Entry) -> tuple[datetime, str, tuple[tuple[str, str], ...]]:
    """The same line of the same stream, whichever query found it."""
    ts, text, labels = entry
    return ts, text, tuple(sorted(labels.items()))


def _filtered(query: str, pattern: str) -> str:
    # Backticks make a raw string in LogQL: the regex needs no further escaping.
    return f"{query} |~ `{pattern}`"


async def fetch_logs(
    source: LokiSource,
    alert: AlertContext,
    investigation: InvestigationConfig | None = None,
    *,
    client: httpx.AsyncClient | None = None,
    breaker: Breaker | None = None,
) -> tuple[list[LogLine], SourceReport]:
    """Lines around `alert` from one Loki source, oldest first, with a report for the timeline.

    Window: `[starts_at - lookback_s, starts_at + lookahead_s]` from `investigation`. Every
    query goes through `breaker` (the source's circuit breaker) when given.
    """
    fetch = SourceFetch(source.name, "loki", breaker=breaker, own_error=LokiError)
    query = None if fetch.refused() else fetch.render(source.query, alert)
    if query is None:
        return [], fetch.finish(0)
    investigation = investigation or InvestigationConfig()
    start, end = alert_window(alert, investigation.lookback_s, investigation.lookahead_s)
    error_end = min(end, alert_window(alert, 0, 60)[1])  # errors leading up to the alert

    def ask(logql: str, until: datetime, limit: int) -> Query[list[Entry]]:
        return lambda http: query_range(
            http, source.url, logql, start=start, end=until, limit=limit, timeout_s=source.timeout_s
        )

    queries = [
        ask(query, end, source.limit),
        ask(_filtered(query, ERROR_FILTER), error_end, source.limit),
        ask(_filtered(query, CHANGE_FILTER), end, min(source.limit, CHANGE_LIMIT)),
    ]
    async with lent_client(client, source.timeout_s) as http:
        results = await fetch.gather(queries, http)
    lines = [
        LogLine(source=source.name, timestamp=ts, text=text)
        for ts, text, _ in distinct(results, _entry_key)
    ]
    lines.sort(key=lambda line: line.timestamp or start)
    return lines, fetch.finish(len(lines))


class LokiLogs(HttpSource[LokiSource, LogLine]):
    """A Loki source as a `LogSource` (tools/sources.py): queries in LogQL."""

    kind = "loki"
    fetcher = fetch_logs

    async def check(self) -> str:
        async with self.client() as http:
            response = await http.get(self.base_url + "/ready")
            if response.status_code == 200:
                return f"loki at {safe_url(self.base_url)}: ready"
            if response.status_code == 404:  # behind a gateway that only exposes the API
                response = await http.get(self.base_url + "/loki/api/v1/labels")
                if response.status_code == 200:
                    return f"loki at {safe_url(self.base_url)}: answering (labels API)"
        raise status_error(response, LokiError)

    async def search(
        self, query: str, *, start: datetime, end: datetime, limit: int
    ) -> list[LogLine]:
        async with self.client() as http:
            entries = await query_range(
                http, self.config.url, query, start=start, end=end, limit=limit,
                timeout_s=self.config.timeout_s,
            )  # fmt: skip
        return [LogLine(source=self.name, timestamp=ts, text=text) for ts, text, _ in entries]
