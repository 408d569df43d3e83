"""The follow-up tool box against real servers: a Loki stand-in, a real Prometheus, log files,
the Kubernetes API stand-in, and the scripted LLM servers with the real LangChain clients."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_ollama import ChatOllama
from langchain_openai import ChatOpenAI

from firebreak.agents.tool_args import ARGUMENTS, TOOL_NAMES
from firebreak.agents.tool_results import next_ref_numbers
from firebreak.agents.tool_specs import tool_specs
from firebreak.agents.tool_support import is_tools_refusal, supports_tools
from firebreak.agents.toolbox import Toolbox
from firebreak.tools import kube_config as kube
from firebreak.tools.files import FileSource
from firebreak.tools.kube_config import KubernetesSource
from firebreak.tools.llm import LLMCallError
from firebreak.tools.loki import LokiSource
from firebreak.tools.models import AlertContext, LogLine, MetricReading
from firebreak.tools.prometheus import PrometheusSource
from firebreak.tools.redact import Redactor
from tests.fakes.k8s_api import FakeKubeApi, Terminated, event, job, pod
from tests.fakes.llm_servers import (
    ScriptedLLMServer,
    answer,
    closed_port_url,
    fixture_llm_server,  # noqa: F401 - a fixture
    http_error,
    tool_call,
)
from tests.support.promstack import Exporter, run_prometheus, serve_metrics

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
ALERT = AlertContext(labels={"service": "checkout", "namespace": "shop"}, starts_at=T0)
WINDOW = (T0 - timedelta(minutes=30), T0 + timedelta(minutes=5))
SECRET = "s3cr3t-db-password-42"
GAUGE = "firebreak_toolbox_queue_depth"


def ns(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1_000_000_000))


class Loki:
    """A Loki look-alike: `lines` answer every query; queries with `!!` are refused."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.received: list[dict[str, str]] = []
        self.lines: list[tuple[datetime, str]] = []
        self.hold: asyncio.Event | None = None  # set: answer only once it is released


@pytest.fixture
async def loki() -> AsyncIterator[Loki]:
    state = Loki("")

    async def query_range(request: web.Request) -> web.Response:
        state.received.append(dict(request.query))
        if state.hold is not None:
            await state.hold.wait()
        query = request.query["query"]
        if "!!" in query:
            return web.Response(
                status=400, text=f"parse error at line 1, col 3: syntax error: {query}"
            )
        values = [[ns(moment), text] for moment, text in state.lines]
        return web.json_response(
            {
                "status": "success",
                "data": {
                    "resultType": "streams",
                    "result": [{"stream": {"service": "checkout"}, "values": values}],
                    "stats": {},
                },
            }
        )

    app = web.Application()
    app.router.add_get("/loki/api/v1/query_range", query_range)
    async with TestServer(app, host="127.0.0.1") as server:
        state.url = str(server.make_url("")).rstrip("/")
        yield state


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Exporter]]:
    with serve_metrics() as exporter:
        exporter.set(GAUGE, 3, {"service": "checkout"})
        workdir: Path = tmp_path_factory.mktemp("toolbox-prom")
        with run_prometheus(workdir, scrape_targets=[exporter.target], interval="250ms") as url:
            yield url, exporter


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[FakeKubeApi, KubernetesSource]]:
    with FakeKubeApi() as api:
        crashed = pod(
            "checkout-1", "shop", created=T0 - timedelta(hours=1), ready=False, restarts=2,
            last_terminated=Terminated("OOMKilled", 137, finished=T0 - timedelta(minutes=1)),
        )  # fmt: skip
        api.add(crashed, event(crashed, "BackOff", "Back-off restarting", first=T0, count=5))
        api.set_log("shop", "checkout-1", "app", [(T0, f"connecting with password={SECRET}")])
        source = KubernetesSource(
            name="prod", kubeconfig=str(api.write_kubeconfig(tmp_path / "kubeconfig"))
        )
        yield api, source


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def loki_source(url: str, name: str = "loki") -> LokiSource:
    return LokiSource(type="loki", name=name, url=url)


def box(http: httpx.AsyncClient, **kwargs: Any) -> Toolbox:
    params: dict[str, Any] = {
        "alert": ALERT,
        "window": WINDOW,
        "http": http,
        "redact": Redactor(secrets=[SECRET]).redact,
    }
    return Toolbox(**(params | kwargs))


# --------------------------------------------------------------------------------------------
# What is offered


def test_specs_name_the_contracts_arguments_and_the_configured_sources() -> None:
    specs = {
        s["function"]["name"]: s["function"] for s in tool_specs(["loki", "app"], ["p"], ["k"])
    }
    assert tuple(specs) == TOOL_NAMES
    arguments = {name: set(spec["parameters"]["properties"]) for name, spec in specs.items()}
    assert arguments == {
        "search_logs": {"source", "query", "start", "end", "limit"},
        "query_metrics": {"source", "promql", "start", "end", "step_s"},
        "kubernetes_events": {"source", "namespace", "name"},
        "kubernetes_describe": {"source", "kind", "namespace", "name"},
        "kubernetes_logs": {"source", "namespace", "pod", "container", "previous", "tail_lines"},
    }
    for name in specs:  # the validation models take exactly these
        assert set(ARGUMENTS[name].model_fields) == arguments[name]
    assert specs["search_logs"]["parameters"]["properties"]["source"]["enum"] == ["loki", "app"]
    assert specs["kubernetes_logs"]["parameters"]["properties"]["source"]["enum"] == ["k"]
    assert [s["function"]["name"] for s in tool_specs(metrics=["p"])] == ["query_metrics"]
    assert tool_specs() == []


def test_describe_offers_every_kind_it_answers_and_logs_say_what_previous_false_reads() -> None:
    specs = {s["function"]["name"]: s["function"] for s in tool_specs(kubernetes=["k"])}
    kinds = specs["kubernetes_describe"]["parameters"]["properties"]["kind"]["enum"]
    assert kinds == ["pod", "deployment", "replicaset", "job", "node"]
    assert set(kinds) == set(kube.KINDS.values())
    logs = specs["kubernetes_logs"]["description"]
    assert "previous=false" in logs and "terminated (a failed Job's pod" in logs


async def test_only_tools_of_configured_kinds_are_offered_and_callable(
    http: httpx.AsyncClient, loki: Loki
) -> None:
    tools = box(http, logs=[loki_source(loki.url)])
    assert [s["function"]["name"] for s in tools.offered()] == ["search_logs"]
    result = await tools.call("kubernetes_events", {"source": "prod", "namespace": "shop"})
    assert result.text == "error: unknown tool 'kubernetes_events' (tools: search_logs)"
    assert box(http).offered() == []


def test_next_ref_numbers_continue_the_evidence() -> None:
    assert next_ref_numbers(["L1", "L12", "M3", "H2", "bogus"]) == {"L": 13, "M": 4, "K": 1, "H": 3}
    assert next_ref_numbers([]) == {"L": 1, "M": 1, "K": 1}


# --------------------------------------------------------------------------------------------
# Calls that answer


async def test_search_logs_newest_first_numbered_after_the_evidence(
    http: httpx.AsyncClient, loki: Loki
) -> None:
    loki.lines = [
        (T0 - timedelta(minutes=9), "ERROR dial tcp 10.0.0.5:5432: connection refused"),
        (T0 - timedelta(minutes=2), "ERROR dial tcp 10.0.0.5:5432: connection refused again"),
    ]
    tools = box(http, logs=[loki_source(loki.url)], next_refs={"L": 7, "M": 2})
    query = '{service="checkout"} |= "refused" | json | line_format "{{.msg}}"'
    result = await tools.call(
        "search_logs",
        {"source": "loki", "query": query, "start": "2026-12-01T09:40:00Z", "limit": 20},
    )
    assert result.error is None
    assert result.refs == ["L7", "L8"]
    assert [item.timestamp for item in result.items] == [
        T0 - timedelta(minutes=2),
        T0 - timedelta(minutes=9),
    ]
    assert all(isinstance(item, LogLine) and item.source == "loki" for item in result.items)
    lines = result.text.splitlines()
    assert lines[0].startswith(
        "2 lines from loki between 2026-12-01T09:40:00Z and 2026-12-01T10:05:00Z"
    )
    assert lines[1].startswith("[L7] 2026-12-01T09:58:00Z loki: ERROR") and lines[2].startswith(
        "[L8]"
    )
    (asked,) = loki.received
    assert asked["query"] == query, "the model's LogQL goes to Loki as written, never templated"
    assert asked["limit"] == "20" and asked["start"] == ns(T0 - timedelta(minutes=20))
    assert asked["end"] == ns(WINDOW[1]), "end defaults to the evidence window's"

    again = await tools.call("search_logs", {"source": "loki", "query": '{service="cart"}'})
    assert again.refs == ["L9", "L10"] and tools.next_refs == {"L": 11, "M": 2, "K": 1}
    assert result.timeline_data() == {
        "tool": "search_logs",
        "arguments": {
            "source": "loki", "query": query, "start": "2026-12-01T09:40:00Z", "end": None,
            "limit": 20,
        },
        "results": 2,
        "seconds": pytest.approx(result.seconds, abs=1e-3),
        "error": None,
    }  # fmt: skip


async def test_search_logs_in_files_is_a_regular_expression(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    log = tmp_path / "app.log"
    log.write_text(
        "2026-12-01T08:00:00Z ERROR timeout talking to db (before the window)\n"
        "2026-12-01T09:50:00Z INFO request ok\n"
        "2026-12-01T09:51:00Z ERROR timeout talking to db\n"
        "  at db.Client.query(Client.java:10) timeout\n"
        "2026-12-01T09:52:00Z WARN connection refused by 10.0.0.5\n"
    )
    tools = box(http, logs=[FileSource(type="file", name="app", path=str(tmp_path / "*.log"))])
    result = await tools.call("search_logs", {"source": "app", "query": r"timeout|refused"})
    assert [item.text for item in result.items] == [
        "2026-12-01T09:52:00Z WARN connection refused by 10.0.0.5",
        "2026-12-01T09:51:00Z ERROR timeout talking to db",
        "  at db.Client.query(Client.java:10) timeout",  # its line's time, after it
    ]
    assert {item.source for item in result.items} == {"app:app.log"}

    bad = await tools.call("search_logs", {"source": "app", "query": "(unclosed"})
    assert bad.error and bad.error.startswith("bad regular expression '(unclosed'")
    assert bad.refs == [] and bad.items == []


async def test_query_metrics_on_a_real_prometheus(
    http: httpx.AsyncClient, prom: tuple[str, Exporter]
) -> None:
    url, _ = prom
    now = datetime.now(UTC)
    alert = AlertContext(labels={"service": "checkout"}, starts_at=now)
    tools = box(
        http,
        alert=alert,
        window=(now - timedelta(minutes=5), now),
        metrics=[PrometheusSource(type="prometheus", name="prom", url=url)],
        next_refs={"M": 4},
    )
    selector = f'{GAUGE}{{service="checkout"}}'
    await _scraped(http, url, selector, at_least=5)

    start = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()
    result = await tools.call(
        "query_metrics", {"source": "prom", "promql": selector, "start": start, "step_s": 1}
    )
    (reading,) = result.items
    assert isinstance(reading, MetricReading) and reading.current == 3 and reading.points > 0
    assert result.refs == ["M4"]
    assert f"[M4] prom: {GAUGE}{{" in result.text and "current=3" in result.text
    assert 'service="checkout"}' in result.text and "}{" not in result.text  # labels said once

    bad = await tools.call("query_metrics", {"source": "prom", "promql": "rate(x[5m]"})
    assert bad.text.startswith("error: HTTP 400: bad_data:") and "parse error" in bad.text
    assert bad.refs == []


async def test_query_metrics_caps_the_range_and_the_resolution_and_says_so(
    http: httpx.AsyncClient, prom: tuple[str, Exporter]
) -> None:
    """Ten years at 1 s steps, or ten years at all, would make Prometheus refuse (11,000 points
    per series) or scan every block it has: the call is cut to the last 24 h of its range and
    its step raised, the answer says so, and the series still comes back."""
    url, _ = prom
    now = datetime.now(UTC)
    tools = box(
        http,
        alert=AlertContext(labels={"service": "checkout"}, starts_at=now),
        window=(now - timedelta(minutes=5), now),
        metrics=[PrometheusSource(type="prometheus", name="prom", url=url)],
    )
    selector = f'{GAUGE}{{service="checkout"}}'
    await _scraped(http, url, selector, at_least=5)
    decade_ago = (now - timedelta(days=3650)).isoformat()

    fine = await tools.call(
        "query_metrics", {"source": "prom", "promql": selector, "start": decade_ago, "step_s": 1}
    )
    assert fine.error is None, fine.text
    (reading,) = fine.items
    assert isinstance(reading, MetricReading) and reading.current == 3
    header = fine.text.splitlines()[0]
    assert "range capped to 24h" in header, header
    assert "step raised to 8s" in header and "11,000 points" in header

    coarse = await tools.call(
        "query_metrics", {"source": "prom", "promql": f"max({selector})", "start": decade_ago}
    )
    assert coarse.error is None and len(coarse.items) == 1, coarse.text
    header = coarse.text.splitlines()[0]
    assert "range capped to 24h" in header and "step 288s" in header
    assert "step raised" not in header

    within = await tools.call(
        "query_metrics", {"source": "prom", "promql": f"min({selector})", "step_s": 1}
    )
    assert "capped" not in within.text and "raised" not in within.text, within.text


async def _scraped(http: httpx.AsyncClient, url: str, selector: str, at_least: int) -> None:
    """Wait until Prometheus holds `at_least` samples of `selector` (an instant query)."""
    deadline = time.monotonic() + 30
    while True:
        answer = await http.get(
            f"{url}/api/v1/query", params={"query": f"count_over_time({selector}[5m])"}
        )
        result = answer.json()["data"]["result"]
        if result and float(result[0]["value"][1]) >= at_least:
            return
        assert time.monotonic() < deadline, f"Prometheus did not scrape {selector} in time"
        await asyncio.sleep(0.1)


async def test_kubernetes_tools_answer_k_refs(
    http: httpx.AsyncClient, cluster: tuple[FakeKubeApi, KubernetesSource]
) -> None:
    api, source = cluster
    async with box(http, kubernetes=[source], next_refs={"K": 5}) as tools:
        events = await tools.call("kubernetes_events", {"source": "prod", "namespace": "shop"})
        described = await tools.call(
            "kubernetes_describe",
            {"source": "prod", "kind": "pod", "namespace": "shop", "name": "checkout-1"},
        )
        logs = await tools.call(
            "kubernetes_logs",
            json.dumps({"source": "prod", "namespace": "shop", "pod": "checkout-1"}),
        )
        missing = await tools.call(
            "kubernetes_describe",
            {"source": "prod", "kind": "deployment", "namespace": "shop", "name": "nope"},
        )
    assert events.refs == ["K5"] and "Warning BackOff" in events.text and "(x5)" in events.text
    assert described.refs == ["K6"] and "OOMKilled (exit code 137)" in described.text
    assert logs.refs == ["K7"] and f"password={SECRET}" not in logs.text
    assert "password=[REDACTED]" in logs.text and SECRET not in logs.items[0].text
    assert (
        missing.text == 'error: deployment shop/nope: HTTP 404: deployments.apps "nope" not found'
    )
    assert {r.method for r in api.requests} == {"GET"}


async def test_kubernetes_describe_a_job_and_read_its_pods_own_output(
    http: httpx.AsyncClient, cluster: tuple[FakeKubeApi, KubernetesSource]
) -> None:
    api, source = cluster
    migrate = job("db-migrate", "shop", created=T0, images={"migrate": "busybox:1.36"})
    runner = pod(
        "db-migrate-x7k2p", "shop", created=T0, owner=migrate, phase="Failed",
        terminated=Terminated("Error", 2, finished=T0),
    )  # fmt: skip
    api.add(migrate, runner)
    api.set_log(
        "shop", "db-migrate-x7k2p", "migrate", [(T0, '/bin/sh: syntax error: unexpected "fi"')]
    )
    async with box(http, kubernetes=[source]) as tools:
        described = await tools.call(
            "kubernetes_describe",
            {"source": "prod", "kind": "job", "namespace": "shop", "name": "db-migrate"},
        )
        output = await tools.call(
            "kubernetes_logs",
            {"source": "prod", "namespace": "shop", "pod": "db-migrate-x7k2p", "previous": False},
        )
    assert described.refs == ["K1"] and "Failed BackoffLimitExceeded" in described.text
    assert output.refs == ["K2"] and 'syntax error: unexpected "fi"' in output.text


# --------------------------------------------------------------------------------------------
# Calls that cannot run


LOGS, EVENTS, DESCRIBE = "search_logs", "kubernetes_events", "kubernetes_describe"
Q = {"source": "loki", "query": '{a="b"}'}
K = {"source": "prod", "namespace": "shop"}
CANNOT_RUN = [
    (LOGS, {"source": "loki"}, "bad arguments: query: Field required"),
    (LOGS, Q | {"limit": 0}, "limit: Input should be greater than or equal to 1"),
    (LOGS, Q | {"grep": "y"}, "grep: unknown argument"),
    (LOGS, Q | {"start": "yesterday"}, "start: Input should be a valid datetime"),
    (LOGS, Q | {"start": "2026-12-01T10:00Z", "end": "2026-12-01T09:00Z"}, "end must be after"),
    (LOGS, '{"source": "loki", "query": ', "bad arguments: not a JSON object"),
    (LOGS, '["loki"]', "bad arguments: not a JSON object"),
    (EVENTS, K | {"namespace": "Shop/../x"}, "namespace: String should match pattern"),
    (DESCRIBE, K | {"kind": "secret", "name": "db"}, "kind must be one of pod, deployment"),
    (DESCRIBE, {"source": "prod", "kind": "pod", "name": "x"}, "namespace is required for a pod"),
    ("kubernetes_logs", K | {"pod": "x", "tail_lines": 10**6}, "tail_lines: Input should be less"),
    (LOGS, Q | {"source": "elsewhere"}, "unknown source 'elsewhere' (log sources: loki)"),
    (EVENTS, K | {"source": "staging"}, "unknown source 'staging' (Kubernetes sources: prod)"),
    ("delete_pod", {"source": "prod"}, "unknown tool 'delete_pod'"),
]


@pytest.mark.parametrize(("name", "arguments", "problem"), CANNOT_RUN)
async def test_a_call_that_cannot_run_answers_an_error(
    http: httpx.AsyncClient,
    loki: Loki,
    cluster: tuple[FakeKubeApi, KubernetesSource],
    name: str,
    arguments: Any,
    problem: str,
) -> None:
    api, source = cluster
    async with box(http, logs=[loki_source(loki.url)], kubernetes=[source]) as tools:
        result = await tools.call(name, arguments)
    assert result.text.startswith("error: ") and problem in result.text, result.text
    assert result.error == result.text.removeprefix("error: ")
    assert result.refs == [] and result.items == [] and tools.calls == 1
    assert loki.received == [] and api.requests == [], "nothing was asked of the sources"


async def test_bad_logql_and_a_source_down_are_errors_not_exceptions(
    http: httpx.AsyncClient, loki: Loki
) -> None:
    down = closed_port_url("ollama")
    tools = box(http, logs=[loki_source(loki.url), loki_source(down, "down")])
    bad = await tools.call("search_logs", {"source": "loki", "query": '{a="b"} !! x'})
    assert bad.text.startswith("error: HTTP 400: parse error at line 1, col 3")
    unreachable = await tools.call("search_logs", {"source": "down", "query": '{a="b"}'})
    assert unreachable.text.startswith("error: ConnectError")
    assert tools.calls == 2 and tools.next_refs["L"] == 1


async def test_a_call_that_hangs_is_given_up(http: httpx.AsyncClient, loki: Loki) -> None:
    loki.hold = asyncio.Event()
    tools = box(http, logs=[loki_source(loki.url)], call_timeout_s=0.2)
    try:
        result = await tools.call("search_logs", {"source": "loki", "query": '{a="b"}'})
    finally:
        loki.hold.set()
    assert result.text == "error: no answer within 0.2s" and len(loki.received) == 1


async def test_an_exact_repeat_is_refused(http: httpx.AsyncClient, loki: Loki) -> None:
    loki.lines = [(T0, "ERROR boom")]
    tools = box(http, logs=[loki_source(loki.url)])
    first = await tools.call("search_logs", {"source": "loki", "query": '{a="b"}'})
    same = await tools.call(
        "search_logs", '{"query": "{a=\\"b\\"}", "source": "loki", "limit": 50}'
    )
    other = await tools.call("search_logs", {"source": "loki", "query": '{a="b"}', "limit": 5})
    assert first.refs == ["L1"]
    assert same.error and same.error.startswith("repeated call: search_logs was already called")
    assert "(refs L1–L1)" in same.text and same.refs == []
    assert other.refs == ["L2"], "different arguments are a new call"
    assert len(loki.received) == 2

    failed = await tools.call("search_logs", {"source": "loki", "query": "!!"})
    again = await tools.call("search_logs", {"source": "loki", "query": "!!"})
    assert (
        failed.error
        and again.error
        == f"repeated call: search_logs with these arguments already failed ({failed.error})"
    )


async def test_after_the_cap_nothing_is_offered_or_run(http: httpx.AsyncClient, loki: Loki) -> None:
    loki.lines = [(T0, "ERROR boom")]
    tools = box(http, logs=[loki_source(loki.url)], max_calls=2)
    await tools.call("search_logs", {"source": "loki", "query": '{a="1"}'})
    assert tools.offered() and not tools.exhausted
    await tools.call("search_logs", {"source": "nope", "query": "x"})  # failed calls count too
    assert tools.exhausted and tools.offered() == []
    refused = await tools.call("search_logs", {"source": "loki", "query": '{a="3"}'})
    assert refused.error == "the limit of 2 tool calls is reached: answer with what you have"
    assert len(loki.received) == 1
    assert box(http, logs=[loki_source(loki.url)], max_calls=0).offered() == []


async def test_a_long_result_is_cut_and_says_how_to_narrow(
    http: httpx.AsyncClient, loki: Loki
) -> None:
    loki.lines = [
        (T0 - timedelta(seconds=i), f"ERROR request {i} failed: " + "x" * 60) for i in range(200)
    ]
    tools = box(http, logs=[loki_source(loki.url)], result_chars=1200, next_refs={"L": 3})
    result = await tools.call("search_logs", {"source": "loki", "query": '{a="b"}', "limit": 200})
    assert len(result.text) <= 1200
    note = result.text.splitlines()[-1]
    assert (
        note.startswith("[cut at 1200 characters:") and f"{len(result.refs)} of 200 results" in note
    )
    assert "narrow the query: a more selective query, a shorter start..end or a lower limit" in note
    assert 0 < len(result.refs) < 200 and result.refs[0] == "L3"
    assert len(result.items) == len(result.refs)
    assert all(f"[{ref}]" in result.text for ref in result.refs)
    assert tools.next_refs["L"] == 3 + len(result.refs), "only what was shown is numbered"

    loki.lines = [(T0, "FATAL " + "y" * 5000)]
    huge = await tools.call("search_logs", {"source": "loki", "query": '{a="c"}'})
    assert len(huge.text) <= 1200 and huge.refs == [f"L{3 + len(result.refs)}"]
    assert (
        huge.items[0].text.endswith("…") and "[cut at 1200 characters: 1 of 1 results" in huge.text
    )


async def test_results_errors_and_arguments_are_redacted(
    http: httpx.AsyncClient, loki: Loki
) -> None:
    loki.lines = [(T0, f"db login failed for postgres://app:{SECRET}@db/shop")]
    seen: list[str] = []
    redactor = Redactor(secrets=[SECRET])

    def redact(text: str) -> str:
        seen.append(text)
        return redactor.redact(text)

    tools = box(http, logs=[loki_source(loki.url)], redact=redact)
    result = await tools.call(
        "search_logs", {"source": "loki", "query": f'{{a="b"}} |= "{SECRET}"'}
    )
    assert SECRET not in result.text and SECRET not in result.items[0].text
    assert "postgres://app:[REDACTED]@db/shop" in result.text
    assert SECRET not in json.dumps(result.timeline_data())
    refused = await tools.call("search_logs", {"source": "loki", "query": f"!! {SECRET}"})
    assert refused.error and SECRET not in refused.text and "[REDACTED]" in refused.text
    assert any(SECRET in text for text in seen), "the injected redactor did the work"


# --------------------------------------------------------------------------------------------
# Capability detection


async def test_ollama_capabilities_say_whether_tools_work(http: httpx.AsyncClient) -> None:
    with ScriptedLLMServer("ollama") as able, ScriptedLLMServer("ollama", tools=False) as unable:
        assert await supports_tools("ollama", able.base_url, able.model, http=http)
        assert not await supports_tools("ollama", unable.base_url, unable.model, http=http)
        assert not await supports_tools("ollama", able.base_url, "no-such-model", http=http)
        assert [r.path for r in able.requests] == ["/api/show", "/api/show"]
    assert not await supports_tools("ollama", closed_port_url("ollama"), "m")
    assert await supports_tools("openai", "https://api.example/v1", "gpt")  # told by a 400 later
    assert not await supports_tools("offline", "", "")


async def test_a_model_without_tools_answers_400_and_that_is_recognised() -> None:
    specs = tool_specs(["loki"])
    with ScriptedLLMServer("openai", tools=False) as server:
        chat = ChatOpenAI(model=server.model, base_url=server.base_url, api_key="k", max_retries=0)
        with pytest.raises(openai.BadRequestError) as refused:
            await chat.bind_tools(specs).ainvoke([HumanMessage("why?")])
        assert is_tools_refusal(refused.value)
        try:
            raise LLMCallError("openai: rejected") from refused.value
        except LLMCallError as wrapped:
            assert is_tools_refusal(wrapped), "the gateway's wrapper is seen through"
        server.script(answer("fine without tools"))
        assert (await chat.ainvoke([HumanMessage("why?")])).content == "fine without tools"
    with ScriptedLLMServer("ollama", tools=False) as server:
        chat_ollama = ChatOllama(model=server.model, base_url=server.base_url)
        with pytest.raises(ollama.ResponseError) as refused_ollama:
            await chat_ollama.bind_tools(specs).ainvoke([HumanMessage("why?")])
        assert is_tools_refusal(refused_ollama.value)
    with ScriptedLLMServer("openai") as server:
        server.script(http_error(500, "boom"))
        chat = ChatOpenAI(model=server.model, base_url=server.base_url, api_key="k", max_retries=0)
        with pytest.raises(openai.InternalServerError) as failed:
            await chat.bind_tools(specs).ainvoke([HumanMessage("why?")])
        assert not is_tools_refusal(failed.value) and not is_tools_refusal(ValueError("x"))


# --------------------------------------------------------------------------------------------
# A whole round trip with the real clients


def _chat(server: ScriptedLLMServer, *, streaming: bool = False) -> Any:
    if server.flavour == "openai":
        return ChatOpenAI(
            model=server.model, base_url=server.base_url, api_key="k", max_retries=0,
            streaming=streaming,
        )  # fmt: skip
    return ChatOllama(model=server.model, base_url=server.base_url)


@pytest.mark.parametrize("streaming", [False, True])
async def test_a_scripted_tool_call_round_trips_through_the_real_clients(
    llm_server: ScriptedLLMServer, http: httpx.AsyncClient, loki: Loki, streaming: bool
) -> None:
    loki.lines = [(T0 - timedelta(minutes=3), "ERROR pool exhausted")]
    query = '{service="checkout"} |= "ERROR"'
    llm_server.script(
        tool_call("search_logs", {"source": "loki", "query": query, "limit": 10}),
        answer("The connection pool was exhausted [L4]."),
    )
    tools = box(http, logs=[loki_source(loki.url)], next_refs={"L": 4})
    chat = _chat(llm_server, streaming=streaming).bind_tools(tools.offered())

    messages: list[Any] = [HumanMessage("Why is checkout failing?")]
    reply = await chat.ainvoke(messages)
    (call,) = reply.tool_calls
    assert call["name"] == "search_logs"
    assert call["args"] == {"source": "loki", "query": query, "limit": 10}
    result = await tools.call(call["name"], call["args"])
    assert result.refs == ["L4"]
    messages += [reply, ToolMessage(result.text, tool_call_id=call["id"])]
    final = await chat.ainvoke(messages)

    assert final.content == "The connection pool was exhausted [L4]." and not final.tool_calls
    assert llm_server.tool_names(0) == ["search_logs"] == llm_server.tool_names(1)
    offered = llm_server.tools(0)[0]["function"]
    assert offered["parameters"]["properties"]["source"]["enum"] == ["loki"]
    sent = llm_server.messages(1)
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[2]["content"] == result.text and "[L4]" in sent[2]["content"]
    assistant_call = sent[1]["tool_calls"][0]["function"]
    if llm_server.flavour == "openai":
        assert sent[2]["tool_call_id"] == call["id"]
        assert json.loads(assistant_call["arguments"]) == call["args"]  # OpenAI: a JSON string
    else:
        assert assistant_call["arguments"] == call["args"]  # Ollama: a dict
