"""Run the real app under uvicorn on a loopback port, inside the test's event loop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import uvicorn

from firebreak.app import create_app
from firebreak.components import Parts, QuietNotifier
from firebreak.config import Config, Secrets
from firebreak.incidents.ports import NoInvestigations
from firebreak.runtime import Runtime


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bare() -> Parts:
    """The store, ingestion, the API and the scheduler; no Slack, no investigations."""
    return Parts(notifier=QuietNotifier(), investigations=NoInvestigations())


def investigating() -> Parts:
    """Everything but Slack: the real investigations, escalation and scheduler."""
    return Parts(notifier=QuietNotifier())


@dataclass
class RunningApp:
    url: str
    runtime: Runtime
    client: httpx.AsyncClient


@asynccontextmanager
async def run_app(
    config: Config, secrets: Secrets | None = None, parts: Parts | None = None
) -> AsyncIterator[RunningApp]:
    """The app as `serve` runs it, with `parts` (default: `bare()`, the HTTP surface alone)."""
    app = create_app(config, secrets or Secrets(), parts or bare())
    port = free_tcp_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, lifespan="on", log_config=None, access_log=False
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises the start-up error
        await asyncio.sleep(0.01)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            yield RunningApp(url, app.state.runtime, client)
    finally:
        server.should_exit = True
        await task
