"""Loki source against a real HTTP server answering with Loki's `query_range` shapes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from firebreak.tools.breaker import Breaker, BreakerConfig
from firebreak.tools.config import InvestigationConfig
from firebreak.tools.evidence import CHANGE_FILTER, ERROR_FILTER
from firebreak.tools.loki import LokiSource, fetch_logs
from firebreak.tools.models import AlertContext

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
WINDOW = InvestigationConfig(lookback_s=1800, lookahead_s=300)


def ns(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1_000_000_000))


def streams(*entries: tuple[dict[str, str], datetime, str]) -> dict[str, Any]:
    """A `query_range` answer for a log query, in the shape Loki documents."""
    result: dict[tuple[tuple[str, str], ...], list[list[str]]] = {}
    for labels, moment, line in entries:
        result.setdefault(tuple(sorted(labels.items())), []).append([ns(moment), line])
    return {
        "status": "success",
        "data": {
            "resultType": "streams",
            "result": [{"stream": dict(k), "values": v} for k, v in result.items()],
            "stats": {"summary": {"bytesProcessedPerSecond": 1, "totalEntriesReturned": 1}},
        },
    }


Handler = Callable[[web.Request], web.StreamResponse | Any]


@pytest.fixture
async def loki() -> AsyncIterator[tuple[str, list[dict[str, str]], list[Handler]]]:
    """A Loki look-alike on 127.0.0.1: records every query; `handlers[0]` decides the answer."""
    received: list[dict[str, str]] = []
    handlers: list[Handler] = []

    async def query_range(request: web.Request) -> web.StreamResponse:
        received.append(dict(request.query))
        result = handlers[0](request)
        return await result if asyncio.iscoroutine(result) else result

    app = web.Application()
    app.router.add_get("/loki/api/v1/query_range", query_range)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/"), received, handlers


POD = {"service": "checkout", "pod": "checkout-7d9f-abcde"}
ROUTINE = [(POD, T0 + timedelta(seconds=i), f"GET /cart 200 {i}ms") for i in range(5)]
FIRST_ERROR = (POD, T0 - timedelta(minutes=9), "ERROR dial tcp 10.0.0.5:5432: connection refused")
DEPLOY = (POD, T0 - timedelta(minutes=12), "Deployment checkout rolled out version v42")


def answer(request: web.Request) -> web.Response:
    query = request.query["query"]
    if ERROR_FILTER in query:
        return web.json_response(streams(FIRST_ERROR, ROUTINE[0]))  # overlap with the plain query
    if CHANGE_FILTER in query:
        return web.json_response(streams(DEPLOY))
    return web.json_response(streams(*ROUTINE))


async def test_three_queries_rendered_windowed_and_merged(loki: Any) -> None:
    url, received, handlers = loki
    handlers.append(answer)
    source = LokiSource(
        type="loki",
        name="loki",
        url=url,
        query='{service="{{ labels.service }}", namespace="{{ labels.namespace }}"}',
        limit=150,
    )
    alert = AlertContext(labels={"service": 'check"out'}, starts_at=T0)

    lines, report = await fetch_logs(source, alert, WINDOW)

    assert len(received) == 3
    by_kind = {
        (
            "errors"
            if ERROR_FILTER in q["query"]
            else "changes"
            if CHANGE_FILTER in q["query"]
            else "plain"
        ): q
        for q in received
    }
    plain, errors, changes = by_kind["plain"], by_kind["errors"], by_kind["changes"]
    # Missing label renders empty, the quote in the value is escaped for the string literal.
    assert plain["query"] == '{service="check\\"out", namespace=""}'
    assert errors["query"] == plain["query"] + f" |~ `{ERROR_FILTER}`"
    assert changes["query"] == plain["query"] + f" |~ `{CHANGE_FILTER}`"
    assert plain["start"] == ns(T0 - timedelta(seconds=1800))
    assert plain["end"] == ns(T0 + timedelta(seconds=300))
    assert errors["start"] == plain["start"] and int(errors["end"]) <= int(plain["end"])
    assert plain["limit"] == "150" and errors["limit"] == "150" and int(changes["limit"]) <= 150
    assert {q["direction"] for q in received} == {"backward"}

    texts = [line.text for line in lines]
    assert texts == [DEPLOY[2], FIRST_ERROR[2]] + [e[2] for e in ROUTINE]  # chronological, deduped
    assert lines[0].timestamp == T0 - timedelta(minutes=12)
    assert all(line.source == "loki" for line in lines)
    assert report.kind == "loki" and report.items == 7 and report.error is None
    assert report.elapsed_ms > 0


async def test_bad_query_reports_lokis_message(loki: Any) -> None:
    url, _, handlers = loki
    message = "parse error at line 1, col 9: syntax error: unexpected IDENTIFIER"
    handlers.append(lambda request: web.Response(status=400, text=message + "\n"))
    source = LokiSource(type="loki", name="loki", url=url, query="{service=checkout}")
    lines, report = await fetch_logs(source, AlertContext(starts_at=T0), WINDOW)
    assert lines == []
    assert report.error == f"HTTP 400: {message}"  # once, not once per query


async def test_timeout_from_config_is_reported(loki: Any) -> None:
    url, _, handlers = loki

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response(streams())

    handlers.append(slow)
    source = LokiSource(type="loki", name="loki", url=url, timeout_s=0.2)
    began = asyncio.get_running_loop().time()
    lines, report = await fetch_logs(source, AlertContext(starts_at=T0), WINDOW)
    assert asyncio.get_running_loop().time() - began < 1.5
    assert lines == [] and report.error is not None and "timed out" in report.error


async def test_partial_failure_keeps_the_lines_that_came_back(loki: Any) -> None:
    url, _, handlers = loki

    def flaky(request: web.Request) -> web.Response:
        if CHANGE_FILTER in request.query["query"]:
            return web.json_response({"status": "error", "error": "too many"}, status=500)
        return answer(request)

    handlers.append(flaky)
    source = LokiSource(type="loki", name="loki", url=url)
    lines, report = await fetch_logs(source, AlertContext(starts_at=T0), WINDOW)
    assert FIRST_ERROR[2] in [line.text for line in lines]
    assert report.items == len(lines) == 6
    assert report.error == "HTTP 500: too many"


async def test_unreachable_loki_is_an_error_not_an_exception() -> None:
    source = LokiSource(type="loki", name="loki", url="http://127.0.0.1:9", timeout_s=1)
    lines, report = await fetch_logs(source, AlertContext(starts_at=T0), WINDOW)
    assert lines == [] and report.error is not None and "ConnectError" in report.error


async def test_bad_template_is_reported(loki: Any) -> None:
    url, received, _ = loki
    source = LokiSource(type="loki", name="loki", url=url, query="{service={{ labels.service ")
    lines, report = await fetch_logs(source, AlertContext(starts_at=T0), WINDOW)
    assert lines == [] and received == []
    assert report.error is not None and "template" in report.error


async def test_a_failing_loki_opens_its_breaker_then_costs_nothing(loki: Any) -> None:
    url, received, handlers = loki
    handlers.append(lambda request: web.Response(status=502, text="bad gateway"))
    source = LokiSource(type="loki", name="loki", url=url)
    breaker = Breaker("loki", BreakerConfig(fail_max=5))
    _, report = await fetch_logs(source, AlertContext(starts_at=T0), WINDOW, breaker=breaker)
    assert report.error == "HTTP 502: bad gateway" and breaker.state == "closed"  # 3 of 5
    await fetch_logs(source, AlertContext(starts_at=T0), WINDOW, breaker=breaker)
    assert breaker.state == "open" and len(received) == 6

    lines, report = await fetch_logs(source, AlertContext(starts_at=T0), WINDOW, breaker=breaker)
    assert lines == [] and len(received) == 6  # no request reached Loki
    assert report.error is not None and report.error.startswith("circuit open: loki is open")


async def test_malformed_queries_do_not_open_the_breaker(loki: Any) -> None:
    url, received, handlers = loki
    handlers.append(lambda request: web.Response(status=400, text="parse error"))
    source = LokiSource(type="loki", name="loki", url=url, query="{service=checkout}")
    breaker = Breaker("loki", BreakerConfig(fail_max=1))
    for _ in range(3):
        _, report = await fetch_logs(source, AlertContext(starts_at=T0), WINDOW, breaker=breaker)
        assert report.error == "HTTP 400: parse error"
    assert breaker.state == "closed" and len(received) == 9  # Loki is up: it answered
