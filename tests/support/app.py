"""Run the real app under uvicorn on a loopback port, inside the test's event loop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import uvicorn

from firebreak.app import Component, Runtime, build_runtime, create_app
from firebreak.config import Config, Secrets


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningApp:
    url: str
    runtime: Runtime
    client: httpx.AsyncClient


@asynccontextmanager
async def run_app(
    config: Config, secrets: Secrets | None = None, components: list[Component] | None = None
) -> AsyncIterator[RunningApp]:
    runtime = build_runtime(config, secrets or Secrets())
    app = create_app(runtime, components)
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
            yield RunningApp(url, runtime, client)
    finally:
        server.should_exit = True
        await task
