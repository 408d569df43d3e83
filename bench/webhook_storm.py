"""Alert-storm benchmark for `POST /webhooks/alertmanager`.

32 connections post 10-alert groups spread over 50 groups, fingerprints all new, with wrk.
Firebreak (`firebreak serve`, SQLite with fsync per commit, or `--store URL`) is compared with
a bare Starlette endpoint that only parses the same JSON, on the same uvicorn, alternating in
one run. Afterwards every acknowledged alert must be in the store and visible through the API.

`--full` runs the configuration users run: Slack over HTTP to the tests' Slack-API server, one
Loki and one Prometheus source on loopback (bench/storm_deps.py, a process of its own), and the
investigations the storm opens running during it. It then reports how long after the storm the
last card was posted and the last investigation finished. `--profile` samples the server with
py-spy during the first round (the one the storm's investigations and cards run in) and prints
where the samples went: the server's parts, then the top functions by self time; the raw
profile is kept.

    apt-get install wrk; pip install py-spy   # once
    python bench/webhook_storm.py [--seconds 10] [--rounds 2] [--store URL] [--full] [--profile]
        [--replicas N]   # N serve processes on one PostgreSQL, the storm's connections split
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).parent
TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} never answered")


def start_deps() -> tuple[subprocess.Popen, dict[str, str]]:
    """The full configuration's Slack, Loki and Prometheus (bench/storm_deps.py)."""
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "storm_deps.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def full_sections(deps: dict[str, str]) -> dict:
    return {
        "slack": {"mode": "http", "api_base_url": deps["slack"] + "/", "channel": "C0INCIDENTS"},
        "sources": {
            "logs": [{"type": "loki", "name": "loki", "url": deps["loki"]}],
            "metrics": [
                {
                    "type": "prometheus",
                    "name": "prometheus",
                    "url": deps["prometheus"],
                    "queries": ['rate(http_requests_total{service="{{ labels.service }}"}[5m])'],
                }
            ],
        },
    }


def start_firebreak(
    workdir: Path, store: str | None, deps: dict[str, str] | None, replica: int = 0
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    store_url = store or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    config = workdir / f"config-{replica}.yaml"
    sections = full_sections(deps) if deps else {"slack": {"mode": "console"}}
    config.write_text(
        json.dumps(
            {
                "server": {"host": "127.0.0.1", "port": port},
                "store": {"url": store_url},
                "llm": {"provider": "offline"},
                **sections,
            }
        )
    )
    env = {**os.environ, "FIREBREAK_WEBHOOK_TOKEN": TOKEN}
    if deps:
        env.update(SLACK_BOT_TOKEN="xoxb-test-token", SLACK_SIGNING_SECRET="bench-signing")
    proc = subprocess.Popen(
        [sys.executable, "-m", "firebreak.cli", "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(workdir / f"serve-{replica}.log", "w"),
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/healthz", proc)
    return proc, url


def start_baseline() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "baseline_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=HERE,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/", proc)
    return proc, url


def wrk(urls: list[str], seconds: int) -> dict:
    """The storm: 32 connections in all, split evenly over `urls` (one wrk process each)."""
    run_id = f"run{time.monotonic_ns()}"  # fingerprints never repeat across runs
    connections = 32 // len(urls)
    procs = [
        subprocess.Popen(
            [
                *("wrk", f"-t{max(1, 2 // len(urls))}", f"-c{connections}", f"-d{seconds}s"),
                *("--timeout", "5s", "-s", str(HERE / "storm.lua"), url, "--", f"{run_id}-{n}"),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n, url in enumerate(urls)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        results.append(json.loads(re.search(r"^RESULT (.*)$", out, re.M).group(1)))
    merged = {key: sum(r[key] for r in results) for key in ("requests", "non2xx", "socket_errors")}
    merged["rps"] = sum(r["requests"] / (r["duration_us"] / 1e6) for r in results)
    merged["p50_us"] = statistics.median(r["p50_us"] for r in results)
    merged["p99_us"] = max(r["p99_us"] for r in results)
    return merged


def stored_alerts(url: str) -> int:
    incidents = httpx.get(url + "/api/v1/incidents", timeout=30).json()
    return sum(incident["alert_count"] for incident in incidents)


def settled_after(url: str, *, within_s: float = 300) -> dict:
    """Seconds after the storm until every incident has its card posted and its analysis
    stored (the full configuration's "Slack and investigations keep progressing")."""
    began = time.monotonic()
    carded = analysed = None
    while time.monotonic() - began < within_s:
        incidents = httpx.get(url + "/api/v1/incidents", timeout=30).json()
        if carded is None and all(i["slack"]["ts"] for i in incidents):
            carded = time.monotonic() - began
        if analysed is None and all(i["analysis"] for i in incidents):
            analysed = time.monotonic() - began
        if carded is not None and analysed is not None:
            break
        time.sleep(0.5)
    return {
        "incidents": len(incidents),
        "last_card_after_storm_s": None if carded is None else round(carded, 1),
        "last_investigation_after_storm_s": None if analysed is None else round(analysed, 1),
    }


def profile(pid: int, seconds: int, workdir: Path) -> subprocess.Popen | None:
    """py-spy sampling `pid` for `seconds` (raw collapsed stacks), if py-spy is installed."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("(no py-spy: pip install py-spy for --profile)", flush=True)
        return None
    out = workdir / "profile.txt"
    return subprocess.Popen(
        [
            spy,
            "record",
            "-p",
            str(pid),
            "-d",
            str(seconds),
            "-r",
            "50",
            "-f",
            "raw",
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


PARTS = {  # a frame that marks a sample as spent in that part (inclusive)
    "HTTP server (uvicorn, h11)": "RequestResponseCycle.run_asgi",
    "webhook handler": "alertmanager_webhook",
    "store writer thread": "Writer._apply",
    "Slack outbox": "OutboxNotifier.",
    "investigations": "InvestigationService.",
}


def top_functions(workdir: Path, count: int = 12) -> list[str]:
    """Where the samples went: the parts above (inclusive), then functions by self time."""
    path = workdir / "profile.txt"
    if not path.exists():
        return []
    self_time: dict[str, int] = {}
    parts = dict.fromkeys(PARTS, 0)
    total = 0
    for line in path.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        leaf = stack.split(";")[-1]
        self_time[leaf] = self_time.get(leaf, 0) + int(samples)
        total += int(samples)
        for part, marker in PARTS.items():
            if marker in stack:
                parts[part] += int(samples)
    ranked = sorted(self_time.items(), key=lambda item: -item[1])[:count]
    return [f"{100 * n / total:5.1f}%  {name}" for name, n in parts.items()] + [
        f"{100 * n / total:5.1f}%  {name}" for name, n in ranked
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--store", help="store URL (default: SQLite in a temp dir)")
    parser.add_argument("--full", action="store_true", help="Slack, Loki, Prometheus on loopback")
    parser.add_argument("--profile", action="store_true", help="py-spy the first round")
    parser.add_argument(
        "--replicas", type=int, default=1, help="serve processes on one PostgreSQL --store"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    if args.replicas > 1 and not (args.store or "").startswith("postgresql"):
        raise SystemExit("--replicas needs --store postgresql+asyncpg://...")

    workdir = Path(tempfile.mkdtemp(prefix="firebreak-bench-"))
    deps_proc, deps = start_deps() if args.full else (None, None)
    replicas = [start_firebreak(workdir, args.store, deps, n) for n in range(args.replicas)]
    fb_urls = [url for _, url in replicas]
    baseline, base_url = start_baseline()
    settled: dict = {}
    spy = None
    try:
        wrk([base_url], 2)  # warm-up both
        wrk(fb_urls, 2)
        base_runs, fb_runs = [], []
        for round_no in range(args.rounds):
            base_runs.append(wrk([base_url], args.seconds))
            if args.profile and round_no == 0:  # the round the investigations run in
                spy = profile(replicas[0][0].pid, args.seconds, workdir)
            fb_runs.append(wrk(fb_urls, args.seconds))
            print(
                f"round {round_no + 1}: baseline {base_runs[-1]['rps']:.0f} req/s, "
                f"firebreak {fb_runs[-1]['rps']:.0f} req/s",
                flush=True,
            )
        acked = sum(r["requests"] - r["non2xx"] for r in fb_runs)
        warmup_and_runs_alerts = stored_alerts(fb_urls[0])
        if args.full:
            settled = settled_after(fb_urls[0])
        if spy is not None:
            spy.wait(60)
    finally:
        for proc in [baseline] + [proc for proc, _ in replicas]:
            proc.terminate()
        for proc in [baseline] + [proc for proc, _ in replicas]:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:  # a starved chart worker can hold up shutdown
                print(f"(pid {proc.pid} still stopping after 30 s: killed)", flush=True)
                proc.kill()
                proc.wait()
        if deps_proc is not None:
            deps_proc.communicate(timeout=30)

    base_rps = statistics.median(r["rps"] for r in base_runs)
    fb_rps = statistics.median(r["rps"] for r in fb_runs)
    report = {
        "baseline_rps": round(base_rps),
        "firebreak_rps": round(fb_rps),
        "ratio": round(fb_rps / base_rps, 3),
        "firebreak_alerts_per_s": round(fb_rps * 10),
        "firebreak_p50_ms": round(statistics.median(r["p50_us"] for r in fb_runs) / 1000, 2),
        "firebreak_p99_ms": round(max(r["p99_us"] for r in fb_runs) / 1000, 2),
        "firebreak_p99_ms_by_round": [round(r["p99_us"] / 1000, 1) for r in fb_runs],
        "baseline_p99_ms": round(max(r["p99_us"] for r in base_runs) / 1000, 2),
        "firebreak_non2xx": sum(r["non2xx"] for r in fb_runs),
        "firebreak_socket_errors": sum(r["socket_errors"] for r in fb_runs),
        "acknowledged_alerts_in_measured_runs": acked * 10,
        "alerts_in_store_incl_warmup": warmup_and_runs_alerts,
        "every_acknowledged_alert_stored": warmup_and_runs_alerts >= acked * 10,
        "configuration": "full" if args.full else "lean",
        "store": (args.store or "sqlite").split(":")[0],
        "replicas": args.replicas,
        **settled,
    }
    print(json.dumps(report, indent=2))
    for line in top_functions(workdir):
        print(line)
    if spy is None:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print("raw profile kept in", workdir / "profile.txt")


if __name__ == "__main__":
    main()
