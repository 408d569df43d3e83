"""Real headless Chromium (Debian's `chromium`) for the page tests.

Each run gets its own profile directory, and the flags a root container needs
(`--no-sandbox --disable-dev-shm-usage`) plus the ones that keep it off the network
(background networking, component updates, sync). It runs as an asyncio subprocess, because
the server under test lives in the test's own event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
]


@dataclass(frozen=True)
class Run:
    stdout: str
    stderr: str


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        raise AssertionError("Debian's chromium is missing: scripts/test.sh installs it")
    return found


async def run_chromium(*args: str, profile: Path | None = None, within_s: float = 90) -> Run:
    with tempfile.TemporaryDirectory(prefix="chromium-") as own:
        user_data = profile or Path(own)
        proc = await asyncio.create_subprocess_exec(
            chromium(),
            *FLAGS,
            f"--user-data-dir={user_data}",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(within_s):
                out, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise AssertionError(f"chromium did not finish within {within_s}s") from None
    if proc.returncode != 0:
        raise AssertionError(f"chromium exited {proc.returncode}: {err.decode()[-2000:]}")
    return Run(out.decode(), err.decode())


async def dump_dom(url: str, profile: Path | None = None) -> Run:
    """The DOM after load (following redirects, keeping cookies), and Chromium's log."""
    return await run_chromium("--dump-dom", url, profile=profile)


async def screenshot(
    url: str,
    target: Path,
    profile: Path,
    size: tuple[int, int] = (1280, 1600),
    *,
    dark: bool = True,
) -> Run:
    args = [f"--screenshot={target}", f"--window-size={size[0]},{size[1]}"]
    if dark:
        args.append("--force-dark-mode")
    return await run_chromium(*args, url, profile=profile)


class DevTools:
    """One Chromium tab driven over the DevTools protocol (a websocket): navigate, type and
    click as a person does, read the DOM. The page under test runs no script of its own; the
    protocol acts from outside it, as a user's hands would."""

    def __init__(self, socket: Any, session: str) -> None:
        self._socket = socket
        self._session = session
        self._ids = itertools.count(100)  # the browser-level calls took the first ids
        self._events: list[dict[str, Any]] = []
        self.log: list[str] = []  # Chromium's log lines so far (CSP violations are logged)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        return await _call(
            self._socket, next(self._ids), method, params, self._session, self._events
        )

    async def until_loaded(self, action: Awaitable[Any]) -> None:
        """Run `action` (a navigation, a click) and wait for the page it leads to to load."""
        self._events.clear()
        await action
        async with asyncio.timeout(30):
            while not any(e.get("method") == "Page.loadEventFired" for e in self._events):
                self._events.append(json.loads(await self._socket.recv()))

    async def open(self, url: str) -> None:
        await self.until_loaded(self.send("Page.navigate", url=url))

    async def evaluate(self, expression: str) -> Any:
        answer = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return answer.get("result", {}).get("value")

    async def dom(self) -> str:
        return str(await self.evaluate("document.documentElement.outerHTML"))


@asynccontextmanager
async def devtools(within_s: float = 60) -> AsyncIterator[DevTools]:
    """Chromium with a DevTools port, and one tab attached; Chromium's log is read all along
    (a full pipe would stall it) into `DevTools.log`."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        proc = await asyncio.create_subprocess_exec(
            chromium(),
            *FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        try:
            async with asyncio.timeout(within_s):
                endpoint = await _devtools_endpoint(proc.stderr)
            async with connect(endpoint, max_size=None) as socket:
                events: list[dict[str, Any]] = []
                target = await _call(
                    socket, 1, "Target.createTarget", {"url": "about:blank"}, None, events
                )
                attached = await _call(
                    socket,
                    2,
                    "Target.attachToTarget",
                    {"targetId": target["targetId"], "flatten": True},
                    None,
                    events,
                )
                tab = DevTools(socket, attached["sessionId"])
                drain = asyncio.create_task(_read_log(proc.stderr, tab.log))
                await tab.send("Page.enable")
                async with asyncio.timeout(within_s):
                    yield tab
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
        await drain


async def _read_log(stderr: asyncio.StreamReader, into: list[str]) -> None:
    while line := await stderr.readline():
        into.append(line.decode(errors="replace"))


async def _devtools_endpoint(stderr: asyncio.StreamReader) -> str:
    while line := await stderr.readline():
        text = line.decode(errors="replace")
        if "DevTools listening on " in text:
            return text.split("DevTools listening on ", 1)[1].strip()
    raise AssertionError("chromium did not open its DevTools port")


async def _call(
    socket: Any,
    call_id: int,
    method: str,
    params: dict[str, Any],
    session: str | None,
    events: list[dict[str, Any]],
) -> dict[str, Any]:
    """One protocol call's result; the events that arrive meanwhile are kept in `events`."""
    message: dict[str, Any] = {"id": call_id, "method": method, "params": params}
    if session is not None:
        message["sessionId"] = session
    await socket.send(json.dumps(message))
    while True:
        answer = json.loads(await socket.recv())
        if answer.get("id") != call_id:
            events.append(answer)
            continue
        if "error" in answer:
            raise AssertionError(f"{method}: {answer['error']}")
        return dict(answer.get("result") or {})
