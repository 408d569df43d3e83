"""Fetch the log lines around an alert from Elasticsearch or OpenSearch (`_search`).

Both speak the same `_search` dialect for what we need: a `bool` filter of the rendered
`query_string` and a `range` on the timestamp field, sorted by time. Response shapes differ in
small ways that are handled here: `hits.total` is an object (ES 7+, OpenSearch) or a number
(ES 6), the timestamp may be an ISO string or epoch milliseconds, and the message field may be
nested (`log.message` as an object path) or flat (a key containing a dot).

As with Loki, a second query restricted to error-ish words runs alongside the plain one so the
explanatory lines are found on a busy index; failures (an open circuit breaker too) end up in
`SourceReport.error` (the shared skeleton: tools/fetching.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from pydantic import Field

from firebreak.tools.breaker import SOURCE_BREAKER, Breaker, BreakerConfig
from firebreak.tools.config import InvestigationConfig, Section
from firebreak.tools.errors import SourceError
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

__all__ = [
    "ERROR_TERMS",
    "ElasticsearchError",
    "ElasticsearchLogs",
    "ElasticsearchSource",
    "fetch_logs",
    "search",
]

ERROR_TERMS = "error OR exception OR fatal OR panic OR timeout OR refused OR oom OR killed"


class ElasticsearchSource(Section):
    """`sources.logs[]` with `type: elasticsearch` (OpenSearch too)."""

    type: Literal["elasticsearch"]
    name: str
    url: str
    index: str = "*"
    query: str = 'service:"{{ labels.service }}"'
    timestamp_field: str = "@timestamp"
    message_field: str = "message"
    limit: int = Field(200, ge=1, le=5000)
    timeout_s: float = Field(10, gt=0)
    circuit_breaker: BreakerConfig = SOURCE_BREAKER


class ElasticsearchError(SourceError):
    """The cluster refused the search; the message is its `root_cause` reason."""


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error_message(response: httpx.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text.strip()}"[:MAX_ERROR_CHARS]
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        causes = error.get("root_cause") or [error]
        cause = causes[0] if isinstance(causes[0], dict) else error
        text = f"{cause.get('type', 'error')}: {cause.get('reason', '')}"
    else:
        text = str(error or payload)
    return f"HTTP {response.status_code}: {text}"[:MAX_ERROR_CHARS]


def search_body(
    query: str, timestamp_field: str, start: datetime, end: datetime, size: int
) -> dict[str, Any]:
    """The `_search` request body: filter context only (no scoring), newest first."""
    return {
        "size": size,
        "track_total_hits": False,
        "query": {
            "bool": {
                "filter": [
                    {"query_string": {"query": query}},
                    {
                        "range": {
                            timestamp_field: {
                                "gte": _iso(start),
                                "lte": _iso(end),
                                "format": "strict_date_optional_time||epoch_millis",
                            }
                        }
                    },
                ]
            }
        },
        "sort": [{timestamp_field: {"order": "desc"}}],
    }


async def search(
    client: httpx.AsyncClient,
    source: ElasticsearchSource,
    query: str,
    *,
    start: datetime,
    end: datetime,
    size: int,
) -> list[dict[str, Any]]:
    """One `_search`; the raw hits. Raises ElasticsearchError on a non-2xx answer."""
    url = f"{source.url.rstrip('/')}/{source.index}/_search"
    response = await client.post(
        url,
        params={"ignore_unavailable": "true", "allow_no_indices": "true"},
        json=search_body(query, source.timestamp_field, start, end, size),
        timeout=source.timeout_s,
    )
    if response.status_code >= 400:
        raise ElasticsearchError(_error_message(response), status_code=response.status_code)
    payload = response.json()
    hits = (payload.get("hits") or {}).get("hits") or []
    return [hit for hit in hits if isinstance(hit, dict)]


def _field(document: dict[str, Any], path: str) -> Any:
    """`a.b.c` as a flat key, an object path, or a mix of both."""
    if path in document:
        return document[path]
    head, _, rest = path.partition(".")
    if rest and isinstance(document.get(head), dict):
        return _field(document[head], rest)
    return None


def _to_datetime(value: Any) -> datetime | None:
    if isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
        millis = float(value)
        return datetime.fromtimestamp(millis / 1000, UTC)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return None


def to_line(hit: dict[str, Any], source: ElasticsearchSource) -> LogLine:
    """A hit as a LogLine: the message field, else the whole document as compact JSON."""
    document = hit.get("_source") or {}
    fields = hit.get("fields") or {}
    message = _field(document, source.message_field)
    if message is None and source.message_field in fields:
        message = fields[source.message_field]
    if isinstance(message, list):
        message = " ".join(str(m) for m in message)
    if message is None:
        message = json.dumps(document, separators=(",", ":"), default=str, sort_keys=True)
    timestamp = _to_datetime(_field(document, source.timestamp_field))
    if timestamp is None:
        timestamp = _to_datetime(fields.get(source.timestamp_field))
    if timestamp is None and hit.get("sort"):
        timestamp = _to_datetime(hit["sort"][0])
    return LogLine(source=source.name, timestamp=timestamp, text=str(message))


def _hit_key(hit: dict[str, Any]) -> str:
    """The same document, whichever search found it: its index and id, else its body."""
    if hit.get("_id"):
        return f"{hit.get('_index')}/{hit.get('_id')}"
    return json.dumps(hit.get("_source"), sort_keys=True, default=str)


async def fetch_logs(
    source: ElasticsearchSource,
    alert: AlertContext,
    investigation: InvestigationConfig | None = None,
    *,
    client: httpx.AsyncClient | None = None,
    breaker: Breaker | None = None,
) -> tuple[list[LogLine], SourceReport]:
    """Lines around `alert` from one index pattern, oldest first, with a timeline report.
    Every search goes through `breaker` (the source's circuit breaker) when given."""
    fetch = SourceFetch(source.name, "elasticsearch", breaker=breaker, own_error=ElasticsearchError)
    query = None if fetch.refused() else fetch.render(source.query, alert)
    if query is None:
        return [], fetch.finish(0)
    investigation = investigation or InvestigationConfig()
    start, end = alert_window(alert, investigation.lookback_s, investigation.lookahead_s)
    error_query = f"({query}) AND {source.message_field}:({ERROR_TERMS})"

    def ask(lucene: str) -> Query[list[dict[str, Any]]]:
        return lambda http: search(http, source, lucene, start=start, end=end, size=source.limit)

    async with lent_client(client, source.timeout_s) as http:
        results = await fetch.gather([ask(query), ask(error_query)], http)
    lines = [to_line(hit, source) for hit in distinct(results, _hit_key)]
    lines.sort(key=lambda line: line.timestamp or start)
    return lines, fetch.finish(len(lines))


class ElasticsearchLogs(HttpSource[ElasticsearchSource, LogLine]):
    """An Elasticsearch source as a `LogSource` (tools/sources.py): queries in query-string
    syntax."""

    kind = "elasticsearch"
    fetcher = fetch_logs

    async def check(self) -> str:
        base = self.base_url
        async with self.client() as http:
            response = await http.get(base + "/")
        if response.status_code != 200:
            raise status_error(response, ElasticsearchError)
        try:
            info = response.json()
            version = info.get("version") or {}
            flavour = version.get("distribution") or "elasticsearch"
            return (
                f"{flavour} {version.get('number', '?')} at {safe_url(base)}, "
                f"cluster {info.get('cluster_name', '?')}"
            )
        except (ValueError, AttributeError):
            raise ElasticsearchError(f"{safe_url(base)} does not look like Elasticsearch") from None

    async def search(
        self, query: str, *, start: datetime, end: datetime, limit: int
    ) -> list[LogLine]:
        async with self.client() as http:
            hits = await search(http, self.config, query, start=start, end=end, size=limit)
        return [to_line(hit, self.config) for hit in hits]
