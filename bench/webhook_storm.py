"""Alert-storm benchmark for `POST /webhooks/alertmanager` (issue 2).

32 connections post 10-alert groups spread over 50 groups, fingerprints all new, with wrk.
Firebreak (`firebreak serve`, SQLite, fsync per commit) is compared with a bare Starlette
endpoint that only parses the same JSON, on the same uvicorn, alternating in one run.
Afterwards every acknowledged alert must be in the store and visible through the API.

    apt-get install wrk   # once
    python bench/webhook_storm.py [--seconds 10] [--rounds 2] [--store URL]
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


def start_firebreak(workdir: Path, store: str | None) -> tuple[subprocess.Popen, str, str]:
    port = free_port()
    store_url = store or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    config = workdir / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "server": {"host": "127.0.0.1", "port": port},
                "store": {"url": store_url},
                "slack": {"mode": "console"},
                "llm": {"provider": "offline"},
            }
        )
    )
    env = {**os.environ, "FIREBREAK_WEBHOOK_TOKEN": TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "firebreak.cli", "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(workdir / "serve.log", "w"),
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/healthz", proc)
    return proc, url, store_url


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


def wrk(url: str, seconds: int) -> dict:
    run_id = f"run{time.monotonic_ns()}"  # fingerprints never repeat across runs
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            "-c32",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "-s",
            str(HERE / "storm.lua"),
            url,
            "--",
            run_id,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = json.loads(re.search(r"^RESULT (.*)$", out, re.M).group(1))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def stored_alerts(url: str) -> int:
    incidents = httpx.get(url + "/api/v1/incidents", timeout=30).json()
    return sum(incident["alert_count"] for incident in incidents)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--store", help="store URL (default: SQLite in a temp dir)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="firebreak-bench-"))
    firebreak, fb_url, _ = start_firebreak(workdir, args.store)
    baseline, base_url = start_baseline()
    try:
        wrk(base_url, 2)  # warm-up both
        wrk(fb_url, 2)
        base_runs, fb_runs = [], []
        for round_no in range(args.rounds):
            base_runs.append(wrk(base_url, args.seconds))
            fb_runs.append(wrk(fb_url, args.seconds))
            print(
                f"round {round_no + 1}: baseline {base_runs[-1]['rps']:.0f} req/s, "
                f"firebreak {fb_runs[-1]['rps']:.0f} req/s",
                flush=True,
            )
        acked = sum(r["requests"] - r["non2xx"] for r in fb_runs)
        warmup_and_runs_alerts = stored_alerts(fb_url)
    finally:
        firebreak.terminate()
        baseline.terminate()
        firebreak.wait(30)
        baseline.wait(30)

    base_rps = statistics.median(r["rps"] for r in base_runs)
    fb_rps = statistics.median(r["rps"] for r in fb_runs)
    report = {
        "baseline_rps": round(base_rps),
        "firebreak_rps": round(fb_rps),
        "ratio": round(fb_rps / base_rps, 3),
        "firebreak_alerts_per_s": round(fb_rps * 10),
        "firebreak_p50_ms": round(statistics.median(r["p50_us"] for r in fb_runs) / 1000, 2),
        "firebreak_p99_ms": round(max(r["p99_us"] for r in fb_runs) / 1000, 2),
        "baseline_p99_ms": round(max(r["p99_us"] for r in base_runs) / 1000, 2),
        "firebreak_non2xx": sum(r["non2xx"] for r in fb_runs),
        "firebreak_socket_errors": sum(r["socket_errors"] for r in fb_runs),
        "acknowledged_alerts_in_measured_runs": acked * 10,
        "alerts_in_store_incl_warmup": warmup_and_runs_alerts,
        "every_acknowledged_alert_stored": warmup_and_runs_alerts >= acked * 10,
    }
    print(json.dumps(report, indent=2))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
