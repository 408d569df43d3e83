"""Slack round trip under load. Run by hand from the repository root:

    python bench/slack_roundtrip.py [--users 20] [--requests 40] [--investigations 20]

`firebreak serve` runs as its own process in HTTP mode, its Slack Web API pointed at the
Slack-compatible test server and its LLM at a scripted OpenAI-compatible server that takes
30 s per answer, so `--investigations` investigations are running throughout. Then `--users`
concurrent users each send `--requests` signed requests, alternating `/incident status ID` and
an Acknowledge click, and the client measures each round trip (until Slack's acknowledgement
arrives). Baseline, same process, same load, same run: `GET /healthz`.

`--think-ms` is each user's pause between actions (0 = a closed loop: a saturation test, every
user firing back to back; 500 = each user acting twice a second, still far faster than people
click). The load generator shares this machine's two cores with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.llm_servers import ScriptedLLMServer, slow
from tests.fakes.slack_api import DEFAULT_TOKEN, FakeSlackApi
from tests.support.app import free_tcp_port
from tests.support.payloads import alert, group
from tests.support.slack_signing import SIGNING_SECRET, block_actions, slash_command

RCA = {
    "root_cause": "x",
    "reasoning": "x",
    "mitigation": "x",
    "prevention": "x",
    "recommendation": "x",
    "confidence_score": 50,
    "remediation": None,
    "evidence": [],
}


def start_serve(workdir: Path, slack_url: str, llm_url: str, limit: int) -> tuple:
    port = free_tcp_port()
    (workdir / "config.json").write_text(
        json.dumps(
            {
                "server": {"host": "127.0.0.1", "port": port},
                "store": {"url": f"sqlite+aiosqlite:///{workdir / 'bench.db'}"},
                "slack": {"mode": "http", "api_base_url": slack_url, "channel": "C0INCIDENTS"},
                "llm": {
                    "provider": "openai",
                    "model": "bench",
                    "base_url": llm_url,
                    "timeout_s": 120,
                },
                "investigation": {"max_concurrent": limit},
            }
        )
    )
    env = {**os.environ, "SLACK_BOT_TOKEN": DEFAULT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET}
    proc = subprocess.Popen(
        [sys.executable, "-m", "firebreak.cli", "serve", "--config", str(workdir / "config.json")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(os.environ.get("FIREBREAK_BENCH_LOG", workdir / "serve.log"), "wb"),
    )
    return proc, f"http://127.0.0.1:{port}"


async def wait_ready(client: httpx.AsyncClient) -> None:
    for _ in range(300):
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("firebreak serve never became ready")


async def user(
    client: httpx.AsyncClient,
    n: int,
    incident_ids: list[int],
    user_id: str,
    response_url: str,
    think_s: float,
    slack_latencies: list[float],
    base_latencies: list[float],
) -> None:
    await asyncio.sleep(random.uniform(0, think_s))  # users do not start in lockstep
    for i in range(n):
        incident_id = incident_ids[i % len(incident_ids)]
        if i % 2 == 0:
            body, headers = slash_command(
                f"status {incident_id}", user_id=user_id, response_url=response_url
            )
        else:
            body, headers = block_actions(
                "incident_ack", str(incident_id), user_id=user_id, response_url=response_url
            )
        began = time.perf_counter()
        response = await client.post("/slack/events", content=body, headers=headers)
        slack_latencies.append(time.perf_counter() - began)
        assert response.status_code == 200, response.text
        began = time.perf_counter()
        await client.get("/healthz")
        base_latencies.append(time.perf_counter() - began)
        await asyncio.sleep(random.uniform(0.5, 1.5) * think_s)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--investigations", type=int, default=20)
    parser.add_argument("--think-ms", type=float, default=500)
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeSlackApi() as slack,
        ScriptedLLMServer("openai") as llm,
    ):
        llm.default = slow(30, RCA)
        proc, url = start_serve(Path(tmp), slack.base_url, llm.base_url, args.investigations)
        try:
            limits = httpx.Limits(max_connections=args.users * 2)
            async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
                await wait_ready(client)
                incident_ids = []
                for i in range(args.investigations):
                    response = await client.post(
                        "/webhooks/alertmanager", json=group(f"g{i}", [alert(f"a{i}")])
                    )
                    incident_ids.append(response.json()["incident_id"])
                while llm.chat_calls < args.investigations:  # all investigations at the LLM
                    await asyncio.sleep(0.1)
                slack_times: list[float] = []
                base_times: list[float] = []
                began = time.perf_counter()
                await asyncio.gather(
                    *(
                        user(
                            client,
                            args.requests,
                            incident_ids,
                            f"U0USER{u:02d}",
                            slack.response_url(),
                            args.think_ms / 1000,
                            slack_times,
                            base_times,
                        )
                        for u in range(args.users)
                    )
                )
                wall = time.perf_counter() - began
                running = llm.chat_calls
        finally:
            proc.terminate()
            proc.wait(30)

    report = {
        "users": args.users,
        "think_ms": args.think_ms,
        "slack_requests": len(slack_times),
        "investigations_running": args.investigations,
        "llm_calls_in_flight_at_end": running,
        "slack_p50_ms": round(statistics.median(slack_times) * 1000, 1),
        "slack_p99_ms": round(pct(slack_times, 99) * 1000, 1),
        "baseline_healthz_p50_ms": round(statistics.median(base_times) * 1000, 1),
        "baseline_healthz_p99_ms": round(pct(base_times, 99) * 1000, 1),
        "ratio_p99_slack_to_healthz": round(pct(slack_times, 99) / pct(base_times, 99), 2),
        "slack_requests_per_s": round(len(slack_times) / wall),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
