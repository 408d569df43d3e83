"""`firebreak serve` as a real process: migrations at start, clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, func, select

from firebreak.config import Config, Secrets
from firebreak.server import open_to_the_network
from firebreak.store.db import sync_url
from firebreak.store.models import Alert, Incident
from tests.support.app import free_tcp_port
from tests.support.payloads import alert, group
from tests.support.waiting import eventually

TOKEN = "serve-test-token"


def start_serve(tmp_path: Path, store_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_tcp_port()
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "server": {"host": "127.0.0.1", "port": port},
                "store": {"url": store_url},
                "slack": {"mode": "console"},
            }
        )
    )
    env = {**os.environ, "FIREBREAK_WEBHOOK_TOKEN": TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "firebreak.cli", "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "serve.log", "wb"),
    )
    return proc, f"http://127.0.0.1:{port}"


async def test_sigterm_keeps_every_acknowledged_alert(store_url: str, tmp_path: Path) -> None:
    proc, url = start_serve(tmp_path, store_url)
    acknowledged: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:

            async def ready() -> bool:
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, within=60)

            async def post(i: int) -> None:
                fingerprints = [f"f{i}-{j}" for j in range(10)]
                payload = group(f"g{i % 5}", [alert(fp) for fp in fingerprints])
                try:
                    response = await client.post(
                        "/webhooks/alertmanager",
                        json=payload,
                        headers={"Authorization": f"Bearer {TOKEN}"},
                    )
                except httpx.TransportError:
                    return  # refused once shutdown began: Alertmanager would retry
                if response.status_code == 200:
                    acknowledged.extend(fingerprints)

            async def terminate_midway() -> None:
                await eventually(lambda: asyncio.sleep(0, len(acknowledged) >= 300), within=30)
                proc.send_signal(signal.SIGTERM)

            await asyncio.gather(terminate_midway(), *(post(i) for i in range(400)))
        # uvicorn finishes the graceful shutdown, then re-raises the signal (exit by SIGTERM,
        # as process managers expect); the lifespan's last line proves nothing was cut short.
        # The shutdown budget: up to server.shutdown_timeout_s (20 s) for in-flight requests,
        # then each component's own grace period.
        try:
            status = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)  # faulthandler: every thread's stack to the log
            time.sleep(1)  # noqa: ASYNC251 - the dump must land before we read the log
            raise AssertionError(
                "serve did not stop:\n" + (tmp_path / "serve.log").read_text()[-6000:]
            ) from None
        assert status == -signal.SIGTERM
        logged = (tmp_path / "serve.log").read_text()
        assert '"event": "firebreak stopped"' in logged
        assert logged.count("access is not configured: every workspace member may act") == 1
        assert logged.count("escalation.policies is empty: no alert pages anyone") == 1
    finally:
        if proc.poll() is None:
            proc.kill()

    engine = create_engine(sync_url(store_url))
    with engine.connect() as conn:
        stored = set(conn.scalars(select(Alert.fingerprint)))
        counted = conn.scalar(select(func.sum(Incident.alert_count)))
    engine.dispose()
    assert acknowledged and set(acknowledged) <= stored
    assert counted == len(stored), "incident counters agree with the stored alerts"


def test_listening_beyond_loopback_without_tokens_is_said() -> None:
    def warnings(host: str, **tokens: str) -> list[str]:
        return open_to_the_network(Config(server={"host": host, "port": 8080}), Secrets(**tokens))

    assert warnings("127.0.0.1") == warnings("::1") == warnings("localhost") == []
    everyone = warnings("0.0.0.0")
    assert len(everyone) == 2
    assert everyone[0].startswith(
        "FIREBREAK_WEBHOOK_TOKEN is not set: anyone who reaches 0.0.0.0:8080"
    )
    assert "FIREBREAK_API_TOKEN is not set" in everyone[1] and "/api/v1" in everyone[1]
    assert warnings("0.0.0.0", webhook_token="w", api_token="a") == []
    assert len(warnings("firebreak.internal", api_token="a")) == 1  # a name may be reachable


def test_the_default_host_is_this_machine_only() -> None:
    """Without a host configured nobody else can reach the webhook or the API, tokens or not;
    listening beyond is a choice the config makes, and `serve` then warns as above."""
    assert Config().server.host == "127.0.0.1"
    assert open_to_the_network(Config(), Secrets()) == []
    (hint,) = open_to_the_network(Config(server={"host": "::"}), Secrets(webhook_token="w"))
    assert "every interface" in hint and "default, 127.0.0.1" in hint


def test_a_port_in_use_is_one_line_and_nothing_starts(tmp_path: Path) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        config = tmp_path / "config.json"
        store = tmp_path / "firebreak.db"
        config.write_text(
            json.dumps(
                {
                    "server": {"host": "127.0.0.1", "port": port},
                    "store": {"url": f"sqlite+aiosqlite:///{store}"},
                    "slack": {"mode": "console"},
                }
            )
        )
        result = subprocess.run(
            [sys.executable, "-m", "firebreak.cli", "serve", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 3
    assert result.stderr.strip() == (
        f"cannot listen on 127.0.0.1:{port}: Address already in use "
        "(is another firebreak or service on it? set server.port)"
    )
    assert not store.exists()  # not migrated: nothing started
