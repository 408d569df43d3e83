"""Which processes live, read from /proc (Linux): what a kill -9 left behind."""

from __future__ import annotations

import time
from pathlib import Path


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def alive(pid: int) -> bool:
    """Running or sleeping: a zombie has finished, it only waits for its parent to read it."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in {"Z", "X"}


def children_of(pid: int) -> list[int]:
    """The live processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            if int(fields[1]) == pid and fields[0] not in {"Z", "X"}:
                found.append(int(entry.name))
    return found


def descendants_of(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for child in children_of(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def wait_gone(pids: list[int], within: float) -> list[int]:
    """The pids still alive after `within` seconds (empty: all of them ended)."""
    deadline = time.monotonic() + within
    while (left := [pid for pid in pids if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left
