"""Elasticsearch / OpenSearch source against a real HTTP server answering `_search` shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from firebreak.tools.breaker import Breaker
from firebreak.tools.config import InvestigationConfig
from firebreak.tools.elasticsearch import ERROR_TERMS, ElasticsearchSource, fetch_logs
from firebreak.tools.models import AlertContext

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
WINDOW = InvestigationConfig(lookback_s=600, lookahead_s=120)


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def hit(doc_id: str, source: dict[str, Any], moment: datetime) -> dict[str, Any]:
    return {
        "_index": "logs-2026.11.22",
        "_id": doc_id,
        "_score": None,
        "_source": source,
        "sort": [millis(moment)],
    }


def es7_answer(hits: list[dict[str, Any]]) -> dict[str, Any]:
    """Elasticsearch 7/8 and OpenSearch: `hits.total` is an object."""
    return {
        "took": 3,
        "timed_out": False,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": len(hits), "relation": "eq"}, "max_score": None, "hits": hits},
    }


def es6_answer(hits: list[dict[str, Any]]) -> dict[str, Any]:
    """Elasticsearch 6 (and OpenSearch with `rest_total_hits_as_int`): a plain number."""
    answer = es7_answer(hits)
    answer["hits"]["total"] = len(hits)
    return answer


Handler = Callable[[str, dict[str, Any]], web.Response]


@pytest.fixture
async def es() -> AsyncIterator[tuple[str, list[tuple[str, dict[str, str], Any]], list[Handler]]]:
    """Records (path, query params, JSON body) of every `_search`; `handlers[0]` answers."""
    received: list[tuple[str, dict[str, str], Any]] = []
    handlers: list[Handler] = []

    async def search(request: web.Request) -> web.Response:
        body = await request.json()
        received.append((request.path, dict(request.query), body))
        return handlers[0](request.match_info["index"], body)

    app = web.Application()
    app.router.add_post("/{index}/_search", search)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/"), received, handlers


ROUTINE = hit(
    "r1",
    {"@timestamp": "2026-11-22T09:59:00.000Z", "message": "GET /cart 200"},
    T0 - timedelta(minutes=1),
)
ERROR = hit(
    "e1",
    {"@timestamp": "2026-11-22T09:52:30.250Z", "message": "ERROR payment gateway timeout"},
    T0 - timedelta(minutes=7, seconds=30),
)


def two_queries(index: str, body: dict[str, Any]) -> web.Response:
    query = body["query"]["bool"]["filter"][0]["query_string"]["query"]
    if ERROR_TERMS in query:
        return web.json_response(es7_answer([ERROR]))
    return web.json_response(es7_answer([ROUTINE, ERROR]))  # the error also matches the plain one


async def test_search_body_window_and_merge(es: Any) -> None:
    url, received, handlers = es
    handlers.append(two_queries)
    source = ElasticsearchSource(
        type="elasticsearch",
        name="es",
        url=url,
        index="logs-*",
        query='service:"{{ labels.service }}" AND env:"{{ labels.env }}"',
        limit=50,
    )
    alert = AlertContext(labels={"service": "check\\out"}, starts_at=T0)

    lines, report = await fetch_logs(source, alert, WINDOW)

    assert len(received) == 2
    path, params, body = received[0]
    assert path == "/logs-*/_search"
    assert params["ignore_unavailable"] == "true"
    queries = sorted(
        b["query"]["bool"]["filter"][0]["query_string"]["query"] for _, _, b in received
    )
    plain = 'service:"check\\\\out" AND env:""'
    assert queries == sorted([plain, f"({plain}) AND message:({ERROR_TERMS})"])
    time_range = body["query"]["bool"]["filter"][1]["range"]["@timestamp"]
    assert time_range["gte"] == "2026-11-22T09:50:00.000Z"
    assert time_range["lte"] == "2026-11-22T10:02:00.000Z"
    assert body["size"] == 50
    assert body["sort"] == [{"@timestamp": {"order": "desc"}}]

    assert [line.text for line in lines] == ["ERROR payment gateway timeout", "GET /cart 200"]
    assert lines[0].timestamp == datetime(2026, 11, 22, 9, 52, 30, 250000, UTC)
    assert report.kind == "elasticsearch" and report.items == 2 and report.error is None


async def test_opensearch_es6_shapes_nested_fields_and_epoch_millis(es: Any) -> None:
    url, _, handlers = es
    documents = [
        hit("a", {"ts": millis(T0 - timedelta(minutes=2)), "log": {"message": "nested msg"}}, T0),
        hit("b", {"ts": "2026-11-22T09:57:00Z", "log.message": "flat dotted key"}, T0),
        hit("c", {"level": "error", "detail": "no message field"}, T0 - timedelta(minutes=1)),
    ]
    handlers.append(lambda index, body: web.json_response(es6_answer(documents)))
    source = ElasticsearchSource(
        type="elasticsearch",
        name="os",
        url=url,
        query="*",
        timestamp_field="ts",
        message_field="log.message",
    )
    lines, report = await fetch_logs(source, AlertContext(starts_at=T0), WINDOW)
    assert [(line.timestamp, line.text) for line in lines] == [
        (T0 - timedelta(minutes=3), "flat dotted key"),
        (T0 - timedelta(minutes=2), "nested msg"),
        (T0 - timedelta(minutes=1), '{"detail":"no message field","level":"error"}'),  # from `sort`
    ]
    assert report.items == 3  # the same ids from both queries are counted once


async def test_query_error_reports_the_root_cause(es: Any) -> None:
    url, _, handlers = es
    error = {
        "error": {
            "root_cause": [
                {
                    "type": "query_shard_exception",
                    "reason": 'Failed to parse query [service:"checkout]',
                    "index": "logs-2026.11.22",
                }
            ],
            "type": "search_phase_execution_exception",
            "reason": "all shards failed",
            "phase": "query",
            "grouped": True,
        },
        "status": 400,
    }
    handlers.append(lambda index, body: web.json_response(error, status=400))
    source = ElasticsearchSource(type="elasticsearch", name="es", url=url, query='service:"x')
    lines, report = await fetch_logs(source, AlertContext(starts_at=T0), WINDOW)
    assert lines == []
    assert report.error == (
        'HTTP 400: query_shard_exception: Failed to parse query [service:"checkout]'
    )


async def test_unreachable_cluster_is_reported() -> None:
    source = ElasticsearchSource(
        type="elasticsearch", name="es", url="http://127.0.0.1:9", timeout_s=1
    )
    lines, report = await fetch_logs(source, AlertContext(starts_at=T0), WINDOW)
    assert lines == [] and report.error is not None and "ConnectError" in report.error


async def test_a_forced_open_breaker_reports_circuit_open_without_searching(es: Any) -> None:
    url, received, handlers = es
    handlers.append(two_queries)
    source = ElasticsearchSource(type="elasticsearch", name="es", url=url)
    breaker = Breaker("es")
    breaker.apply("open", by="test")
    lines, report = await fetch_logs(source, AlertContext(starts_at=T0), WINDOW, breaker=breaker)
    assert lines == [] and received == []
    assert report.error == "circuit open: es is forced open by an operator"
    breaker.apply("close", by="test")
    lines, report = await fetch_logs(source, AlertContext(starts_at=T0), WINDOW, breaker=breaker)
    assert report.error is None and len(lines) == 2 and len(received) == 2
