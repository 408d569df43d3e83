"""An aiohttp app on 127.0.0.1 in a thread of its own, for the fakes of outside servers (LLMs,
the Kubernetes API): blocking test code and the app under test both talk to it over a real
socket, and it outlives neither the test nor a failed start."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Self

from aiohttp import web


class ThreadedServer:
    """Subclasses build their app in `_app()`; `start`/`stop`, or use it as a (async) context
    manager. `port` is set once started."""

    name = "fake server"
    shutdown_timeout_s = 60.0  # aiohttp's default: how long `stop` lets handlers finish

    def __init__(self) -> None:
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    async def _app(self) -> web.Application:
        raise NotImplementedError

    def _before_stop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called from the test's thread before the app stops (wake what still waits)."""

    def start(self) -> Self:
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{self.name} did not start")
        if self._startup_error is not None:
            raise RuntimeError(f"{self.name} failed") from self._startup_error
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._before_stop(loop)
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._runner = web.AppRunner(
            await self._app(),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=self.shutdown_timeout_s,
        )
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
