"""A small disk of the test's own, to fill up and free: a tmpfs mounted on a temporary
directory (root only; skipped elsewhere), unmounted afterwards.

`small_disk` is the fixture; `SmallDisk.fill()` writes a file until the disk refuses more
(ENOSPC), `SmallDisk.free()` deletes it. A full disk does not stay full by itself: SQLite
truncates and rewrites its side files, and what one of them gives back another takes; `full()`
keeps it full (topping the file up, as a runaway log would) until it is freed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SIZE = "24m"
CHUNK = 64 * 1024


@dataclass
class SmallDisk:
    path: Path

    @property
    def filler(self) -> Path:
        return self.path / "filler.bin"

    def fill(self) -> int:
        """Write until the disk is full; the bytes written."""
        written = 0
        with open(self.filler, "ab", buffering=0) as out:
            for size in (CHUNK, 4096, 512, 1):
                block = b"\0" * size
                while True:
                    try:
                        written += out.write(block)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
        return written

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    @contextlib.asynccontextmanager
    async def full(self, every_s: float = 0.05) -> AsyncIterator[int]:
        """The disk filled and kept full while inside; freed on the way out. Yields the bytes
        first written."""
        first = await asyncio.to_thread(self.fill)
        stop = asyncio.Event()

        async def top_up() -> None:
            while not stop.is_set():
                await asyncio.to_thread(self.fill)
                await asyncio.sleep(every_s)

        task = asyncio.create_task(top_up())
        try:
            yield first
        finally:
            stop.set()
            await task
            self.free()

    def available(self) -> int:
        return shutil.disk_usage(self.path).free


@pytest.fixture
def small_disk() -> Iterator[SmallDisk]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path = Path(tempfile.mkdtemp(prefix="firebreak-disk-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        path.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield SmallDisk(path)
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
        with contextlib.suppress(OSError):
            path.rmdir()
