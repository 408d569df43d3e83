"""Investigation benchmarks. Run by hand from the repository root:

    python bench/investigation.py [--incidents 30] [--concurrent 50] [--limit 4]

1. Overhead: incident creation → stored RCA, with 200 log lines (a file source) and 3 metric
   queries (a real Prometheus from Debian's package, scraping a local exporter), the LLM a
   scripted OpenAI-compatible server that answers at once. Baseline in the same run: the bare
   LLM round trip through the same gateway.
2. Throughput under a slow LLM: `--concurrent` investigations at once against an LLM taking
   2 s each, `--limit` at a time. Baseline: the ideal ceil(n / limit) x 2 s.
3. Circuit breaker: time for a call to fail once the breaker is open. Baseline: raising and
   catching an exception in a plain function.
4. The follow-up loop's own overhead per tool call: investigations in which the
   scripted LLM (answering at once) calls `--tool-calls` tools, one after the other, on a log
   file (an in-process source). Per call, the time between two LLM requests as the server
   sees them arrive: the LLM round trip, the graph's two steps (checkpointed), the toolbox,
   the TOOL_CALLED event, the metrics, the next prompt. Measured twice in the same run: with
   the real toolbox, and with `Toolbox.call` replaced by returning a constant result (so the
   source costs nothing); the bare LLM round trip of the same request through the same
   gateway is the baseline subtracted from both.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firebreak.agents import toolbox
from firebreak.agents.schema import rca_schema
from firebreak.agents.tool_results import ToolResult
from firebreak.agents.tool_specs import tool_specs
from firebreak.components import Parts, QuietNotifier, assembled
from firebreak.config import Config, LLMConfig, Secrets
from firebreak.incidents.events import Change, IncidentEvent
from firebreak.store.payloads import AlertmanagerPayload
from firebreak.tools.llm import LLMGateway, LLMUnavailable
from tests.fakes.llm_servers import (
    ScriptedLLMServer,
    answer,
    closed_port_url,
    slow,
    tool_call,
)
from tests.support.payloads import alert, group
from tests.support.promstack import run_prometheus, serve_metrics

RCA = {
    "root_cause": "Payment gateway timeouts exhaust the connection pool",
    "reasoning": "Errors start right after the deploy and the pool saturates.",
    "mitigation": "Roll back.",
    "prevention": "Canary.",
    "recommendation": "Roll back, then tune pool.",
    "confidence_score": 70,
    "remediation": None,
    "evidence": ["L1", "M1"],
}
QUERIES = ["bench_errors", "bench_latency_seconds", "bench_pool_in_use"]


def write_logs(path: Path, starts: datetime) -> None:
    lines = []
    for i in range(200):
        at = starts - timedelta(seconds=600 - i * 3)
        level = "ERROR" if i % 4 == 0 else "INFO"
        lines.append(f"{at.isoformat()} {level} request {i} took {i % 90} ms pool={i % 20}")
    path.write_text("\n".join(lines) + "\n")


def config_for(workdir: Path, llm_url: str, prometheus: str, limit: int) -> Config:
    log = workdir / "app.log"
    return Config(
        store={"url": f"sqlite+aiosqlite:///{workdir / 'bench.db'}"},
        llm={"provider": "openai", "model": "bench", "base_url": llm_url, "timeout_s": 30},
        sources={
            "logs": [{"type": "file", "name": "app", "path": str(log)}],
            "metrics": [
                {"type": "prometheus", "name": "prom", "url": prometheus, "queries": QUERIES[1:]}
            ],
        },
        investigation={"max_concurrent": limit, "checkpoint_path": str(workdir / "cp.db")},
    )


def payload(key: str, starts: datetime) -> AlertmanagerPayload:
    body = group(key, [alert(key, starts_at=starts, expr="bench_errors > 1")])
    return AlertmanagerPayload.model_validate(body)


async def timed_investigations(
    config: Config, keys: list[str], starts: datetime, *, at_once: bool
) -> list[float]:
    """Seconds from submitting each alert group to its analysis being stored."""
    submitted: dict[int, float] = {}
    finished: dict[int, float] = {}
    done = asyncio.Event()

    def on_event(event: IncidentEvent) -> None:
        if event.change is Change.UPDATED and event.incident_id in submitted:
            finished.setdefault(event.incident_id, time.perf_counter())
            if len(finished) == len(keys):
                done.set()

    async with assembled(config, Secrets(), Parts(notifier=QuietNotifier())) as runtime:
        runtime.bus.subscribe(on_event)

        async def submit(key: str) -> None:
            began = time.perf_counter()
            outcome = await runtime.ingest(payload(key, starts))
            submitted[outcome.incident_id] = began

        if at_once:
            await asyncio.gather(*(submit(key) for key in keys))
        else:
            for key in keys:
                await submit(key)
                await runtime.investigations.wait_idle()
        await asyncio.wait_for(done.wait(), timeout=600)
    return [finished[i] - submitted[i] for i in submitted]


async def llm_round_trips(llm_url: str, n: int) -> list[float]:
    cfg = LLMConfig(provider="openai", model="bench", base_url=llm_url, timeout_s=30)
    messages = [{"role": "user", "content": "x" * 4000}]
    times = []
    async with LLMGateway.from_config(cfg) as gateway:
        for _ in range(n):
            began = time.perf_counter()
            await gateway.complete_json(messages, rca_schema())
            times.append(time.perf_counter() - began)
    return times


async def breaker_fail_fast(n: int) -> tuple[list[float], list[float]]:
    cfg = LLMConfig(
        provider="openai",
        model="bench",
        base_url=closed_port_url("openai"),
        timeout_s=2,
        transient_retries=0,
        circuit_breaker={"fail_max": 1, "reset_timeout_s": 600},
    )
    messages = [{"role": "user", "content": "x"}]
    open_times = []
    async with LLMGateway.from_config(cfg) as gateway:
        try:
            await gateway.complete_json(messages, {})
        except LLMUnavailable:
            pass  # this failure opens the breaker
        for _ in range(n):
            began = time.perf_counter()
            try:
                await gateway.complete_json(messages, {})
            except LLMUnavailable:
                open_times.append(time.perf_counter() - began)

    async def plain() -> None:
        raise LLMUnavailable("baseline", kind="offline", tries=0)

    base = []
    for _ in range(n):
        began = time.perf_counter()
        try:
            await plain()
        except LLMUnavailable:
            base.append(time.perf_counter() - began)
    return open_times, base


def loop_config(workdir: Path, llm_url: str, calls: int) -> Config:
    return Config(
        store={"url": f"sqlite+aiosqlite:///{workdir / 'loop.db'}"},
        llm={"provider": "openai", "model": "bench", "base_url": llm_url, "timeout_s": 30},
        sources={
            "logs": [{"type": "file", "name": "app", "path": str(workdir.parent / "app.log")}]
        },
        investigation={"checkpoint_path": str(workdir / "cp.db"), "max_tool_calls": calls},
    )


async def constant_call(self: toolbox.Toolbox, name: str, arguments: object) -> ToolResult:
    self.calls += 1
    return ToolResult(tool=name, arguments={}, text="3 lines, all fine", key=f"k{self.calls}")


async def tool_loop_gaps(
    workdir: Path, llm: ScriptedLLMServer, starts: datetime, incidents: int, calls: int
) -> list[float]:
    """Seconds between consecutive LLM requests of each investigation's follow-up loop."""
    workdir.mkdir()  # noqa: ASYNC240 - a bench, before the clock runs
    llm.reset()
    for _ in range(incidents):
        llm.script(
            *(
                tool_call("search_logs", {"source": "app", "query": f"took {i}"})
                for i in range(calls)
            ),
            answer(RCA),
        )
    await timed_investigations(
        loop_config(workdir, llm.base_url, calls),
        [f"loop{i}" for i in range(incidents)],
        starts,
        at_once=False,
    )
    arrivals = [r.at for r in llm.chat_requests]
    assert len(arrivals) == incidents * (calls + 1), len(arrivals)
    gaps = []
    for first in range(0, len(arrivals), calls + 1):
        block = arrivals[first : first + calls + 1]
        gaps += [later - earlier for earlier, later in itertools.pairwise(block)]
    return gaps


async def loop_llm_round_trips(llm: ScriptedLLMServer, config: Config, n: int) -> list[float]:
    """The loop's own request (prompt and tools as the first follow-up sent them) through the
    same gateway, answered with a tool call: what each loop step pays the LLM."""
    messages = [
        {"role": m["role"], "content": m["content"]} for m in llm.messages(0) if m.get("content")
    ]
    tools = tool_specs([source.name for source in config.sources.logs])
    llm.reset()
    llm.default = tool_call("search_logs", {"source": "app", "query": "took 1"})
    times = []
    async with LLMGateway.from_config(config.llm) as gateway:
        for _ in range(n):
            began = time.perf_counter()
            await gateway.complete_with_tools(messages, tools)
            times.append(time.perf_counter() - began)
    return times


async def tool_loop(
    workdir: Path, llm: ScriptedLLMServer, starts: datetime, incidents: int, calls: int
) -> dict[str, float]:
    real = await tool_loop_gaps(workdir / "loop-real", llm, starts, incidents, calls)
    rtt = await loop_llm_round_trips(llm, loop_config(workdir, llm.base_url, calls), 50)
    original = toolbox.Toolbox.call
    toolbox.Toolbox.call = constant_call  # type: ignore[method-assign]
    try:
        constant = await tool_loop_gaps(workdir / "loop-const", llm, starts, incidents, calls)
    finally:
        toolbox.Toolbox.call = original  # type: ignore[method-assign]
    p50 = {name: statistics.median(v) * 1000 for name, v in
           (("real", real), ("constant", constant), ("llm", rtt))}  # fmt: skip
    return {
        "tool_calls": len(real),
        "p50_step_ms": round(p50["real"], 2),
        "p50_step_constant_toolbox_ms": round(p50["constant"], 2),
        "p50_llm_round_trip_ms": round(p50["llm"], 2),
        "p50_loop_overhead_ms": round(p50["constant"] - p50["llm"], 2),
        "p50_source_ms": round(p50["real"] - p50["constant"], 2),
        "p90_step_constant_toolbox_ms": round(pct(constant, 90) * 1000, 2),
    }


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--incidents", type=int, default=30)
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--llm-seconds", type=float, default=2.0)
    parser.add_argument("--tool-calls", type=int, default=6)
    parser.add_argument("--loop-incidents", type=int, default=10)
    parser.add_argument("--only-loop", action="store_true", help="section 4 alone")
    args = parser.parse_args()
    report: dict[str, object] = {}
    starts = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)

    with (
        tempfile.TemporaryDirectory() as tmp,
        serve_metrics() as exporter,
        ScriptedLLMServer("openai") as llm,
    ):
        workdir = Path(tmp)
        write_logs(workdir / "app.log", starts)
        for name, value in zip(QUERIES, (5, 0.8, 19), strict=True):
            exporter.set(name, value)
        if args.only_loop:
            report["tool_loop"] = await tool_loop(
                workdir, llm, starts, args.loop_incidents, args.tool_calls
            )
            print(json.dumps(report, indent=2))
            return
        with run_prometheus(workdir, scrape_targets=[exporter.target]) as prometheus:
            await asyncio.sleep(6)  # Prometheus' first scrape happens on a 5 s tick
            llm.default = answer(RCA)
            llm_base = await llm_round_trips(llm.base_url, args.incidents)
            (workdir / "a").mkdir()
            totals = await timed_investigations(
                config_for(workdir / "a", llm.base_url, prometheus, args.limit),
                [f"seq{i}" for i in range(args.incidents)],
                starts,
                at_once=False,
            )
            report["overhead"] = {
                "p50_total_ms": round(statistics.median(totals) * 1000, 1),
                "p50_llm_round_trip_ms": round(statistics.median(llm_base) * 1000, 1),
                "p50_overhead_ms": round(
                    (statistics.median(totals) - statistics.median(llm_base)) * 1000, 1
                ),
                "ratio_total_to_llm": round(
                    statistics.median(totals) / statistics.median(llm_base), 2
                ),
            }
            print(json.dumps(report["overhead"]), flush=True)

            llm.default = slow(args.llm_seconds, RCA)
            (workdir / "b").mkdir()
            began = time.perf_counter()
            await timed_investigations(
                config_for(workdir / "b", llm.base_url, prometheus, args.limit),
                [f"par{i}" for i in range(args.concurrent)],
                starts,
                at_once=True,
            )
            wall = time.perf_counter() - began
            ideal = math.ceil(args.concurrent / args.limit) * args.llm_seconds
            report["slow_llm"] = {
                "investigations": args.concurrent,
                "limit": args.limit,
                "wall_s": round(wall, 2),
                "ideal_s": ideal,
                "ratio_to_ideal": round(wall / ideal, 3),
                "serial_would_be_s": args.concurrent * args.llm_seconds,
            }
            print(json.dumps(report["slow_llm"]), flush=True)

        report["tool_loop"] = await tool_loop(
            workdir, llm, starts, args.loop_incidents, args.tool_calls
        )
        print(json.dumps(report["tool_loop"]), flush=True)

    open_times, base = await breaker_fail_fast(2000)
    report["breaker_open"] = {
        "p50_us": round(pct(open_times, 50) * 1e6, 1),
        "p99_us": round(pct(open_times, 99) * 1e6, 1),
        "baseline_raise_p50_us": round(pct(base, 50) * 1e6, 2),
        "ratio_p50": round(pct(open_times, 50) / pct(base, 50), 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
