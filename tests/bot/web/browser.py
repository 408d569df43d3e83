"""Real headless Chromium (Debian's `chromium`) for the page tests.

Each run gets its own profile directory, and the flags a root container needs
(`--no-sandbox --disable-dev-shm-usage`) plus the ones that keep it off the network
(background networking, component updates, sync). It runs as an asyncio subprocess, because
the server under test lives in the test's own event loop.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

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
