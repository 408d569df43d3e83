"""Read log lines around an alert from local files (a glob such as `/var/log/app/*.log`).

Why it is built this way:
- Log files grow without bound; only the tail can hold the incident, so each file is read
  backwards from its end, at most `max_bytes`, never whole.
- File I/O blocks; it runs in `asyncio.to_thread` so the event loop keeps serving Slack.
- Each line is cut to `MAX_LINE_CHARS` (marked "…") as it is read, before anything scans it:
  one megabyte-long line must cost no more than a screenful to match, rank and redact.
- Lines are kept when their leading timestamp falls inside the window. Lines without one
  (stack-trace continuations) follow the decision for the timestamped line above them and take
  its time; in a file without any timestamps every line is kept.
- Naive timestamps are read as UTC, the only zone servers can agree on.
- When more than `limit` lines match, error and change lines are kept first (the same idea as
  Loki's filtered queries), then the newest of the rest.
- A search (`grep`, the investigation tool's) reads the same tails with the same window rule,
  and keeps the lines its pattern matches; the pattern comes from a model, so it runs on RE2.
"""

from __future__ import annotations

import asyncio
import glob
import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field

from firebreak.tools.config import InvestigationConfig, Section
from firebreak.tools.errors import Category, SourceError
from firebreak.tools.evidence import is_change, is_error
from firebreak.tools.models import AlertContext, LogLine, SourceReport
from firebreak.tools.safe_regex import PatternError, compile_untrusted
from firebreak.tools.templating import alert_window
from firebreak.tools.text import as_utc, cut, duration

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MAX_LINE_CHARS",
    "FileLogs",
    "FileSource",
    "FilesError",
    "fetch_logs",
    "grep",
    "parse_timestamp",
    "read_tail",
]

DEFAULT_MAX_BYTES = 1024 * 1024  # per file; a busy service writes this in well under the window
MAX_LINE_CHARS = 2000  # per line as read; evidence shows 600 of it (tools/evidence.py)
_HEAD = 64  # a "leading" timestamp starts within this many characters (after `[`, `ts=`...)

_ISO = re.compile(
    r"(?P<iso>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?"
    r"(?:\s?(?:Z|UTC|[+-]\d{2}:?\d{2}))?)"
)
_SYSLOG = re.compile(
    r"^(?:<\d+>)?(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +"
    r"(?P<day>\d{1,2}) (?P<time>\d{2}:\d{2}:\d{2})"
)
_CLF = re.compile(r"\[(?P<clf>\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\]")
_EPOCH = re.compile(r"^(?P<epoch>1\d{9}(?:\.\d+)?|1\d{12})\b")
_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


class FileSource(Section):
    """`sources.logs[]` with `type: file`: a glob of local files."""

    type: Literal["file"]
    name: str
    path: str
    limit: int = Field(200, ge=1, le=5000)


class FilesError(SourceError):
    """A search that cannot run: no file matches, or a pattern RE2 refuses. The asker's
    mistake, so a breaker would not count it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, category=Category.BAD_REQUEST)


def parse_timestamp(line: str, *, reference: datetime | None = None) -> datetime | None:
    """The timestamp a log line starts with, timezone-aware, or None.

    Understands ISO-8601 / RFC 3339 (also with a space, a comma before the fraction, or
    `UTC`), syslog `Mon dd HH:MM:SS` (year taken from `reference`), the common log format
    `[10/Oct/2000:13:55:36 -0700]` and leading Unix epoch seconds or milliseconds.
    """
    head = line[:_HEAD]
    if match := _ISO.search(head):
        text = match.group("iso").replace(",", ".").replace(" UTC", "Z").replace("UTC", "Z")
        if len(text) > 10 and text[10] == " ":
            text = text[:10] + "T" + text[11:]
        text = re.sub(r"(\d)\s([+-]\d{2}|Z)", r"\1\2", text)
        try:
            return as_utc(datetime.fromisoformat(text))
        except ValueError:
            pass
    if match := _SYSLOG.match(head):
        ref = reference or datetime.now(UTC)
        hours, minutes, seconds = (int(x) for x in match.group("time").split(":"))
        try:
            moment = datetime(
                ref.year,
                _MONTHS[match.group("mon")],
                int(match.group("day")),
                hours,
                minutes,
                seconds,
                tzinfo=UTC,
            )
        except ValueError:
            return None
        if moment - ref > timedelta(days=1):  # December lines read in January
            moment = moment.replace(year=ref.year - 1)
        return moment
    if match := _CLF.search(head):
        try:
            return datetime.strptime(match.group("clf"), "%d/%b/%Y:%H:%M:%S %z")
        except ValueError:
            return None
    if match := _EPOCH.match(head):
        value = float(match.group("epoch"))
        return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
    return None


def read_tail(
    path: str | os.PathLike[str],
    max_bytes: int = DEFAULT_MAX_BYTES,
    line_chars: int = MAX_LINE_CHARS,
) -> list[str]:
    """The last lines of a file within `max_bytes`, without reading the rest (blocking), each
    cut to `line_chars`."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        offset = max(0, size - max_bytes)
        handle.seek(offset)
        data = handle.read(size - offset)
    if offset > 0:  # the first line is cut in the middle: drop it
        newline = data.find(b"\n")
        data = data[newline + 1 :] if newline >= 0 else b""
    return [cut(line, line_chars) for line in data.decode("utf-8", errors="replace").splitlines()]


@dataclass
class _Candidate:
    line: LogLine
    interesting: bool
    order: int


def _select(path: str, start: datetime, end: datetime, max_bytes: int) -> list[_Candidate]:
    lines = read_tail(path, max_bytes)
    kept: list[_Candidate] = []
    current: datetime | None = None
    inside = True  # before any timestamp: keep (files without timestamps keep everything)
    entry_interesting = False
    for order, text in enumerate(lines):
        if not text.strip():
            continue
        ts = parse_timestamp(text, reference=end)
        interesting = is_error(text) or is_change(text)
        if ts is not None:
            current = ts
            inside = start <= ts <= end
            entry_interesting = interesting
        else:  # a continuation (stack frame) matters as much as the line it continues
            interesting = interesting or entry_interesting
        if not inside:
            continue
        kept.append(
            _Candidate(LogLine(source="", timestamp=current, text=text), interesting, order)
        )
    return kept


def _read_all(
    pattern: str, start: datetime, end: datetime, limit: int, name: str, max_bytes: int
) -> tuple[list[LogLine], list[str], int]:
    files = _matching_paths(pattern)
    errors: list[str] = []
    candidates: list[_Candidate] = []
    for path in files:
        try:
            if datetime.fromtimestamp(os.path.getmtime(path), UTC) < start:
                continue  # nothing was written to it during the window
            for candidate in _select(path, start, end, max_bytes):
                candidate.line.source = f"{name}:{Path(path).name}"
                candidates.append(candidate)
        except OSError as exc:
            errors.append(f"{path}: {exc.strerror or exc}")
    if len(candidates) > limit:
        interesting = [c for c in candidates if c.interesting]
        rest = [c for c in candidates if not c.interesting]
        interesting.sort(key=_chrono)
        keep = interesting[: max(limit // 2, limit - len(rest))]
        rest.sort(key=_chrono)
        keep += rest[len(rest) - (limit - len(keep)) :] if limit > len(keep) else []
        candidates = keep
    candidates.sort(key=_chrono)
    return [c.line for c in candidates], errors, len(files)


_EPOCH_START = datetime.min.replace(tzinfo=UTC)


def _chrono(candidate: _Candidate) -> tuple[datetime, int]:
    return candidate.line.timestamp or _EPOCH_START, candidate.order


async def fetch_logs(
    source: FileSource,
    alert: AlertContext,
    investigation: InvestigationConfig | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[list[LogLine], SourceReport]:
    """Lines around `alert` from the files matching `source.path`, oldest first.

    `LogLine.source` is `"<source name>:<file name>"` so a reader knows which file spoke.
    """
    investigation = investigation or InvestigationConfig()
    began = time.perf_counter()
    start, end = alert_window(alert, investigation.lookback_s, investigation.lookahead_s)
    report = SourceReport(source=source.name, kind="file")
    try:
        lines, errors, matched = await asyncio.to_thread(
            _read_all, source.path, start, end, source.limit, source.name, max_bytes
        )
    except OSError as exc:  # the glob itself failed (permissions on a directory)
        lines, errors, matched = [], [f"{source.path}: {exc}"], 0
    if matched == 0 and not errors:
        errors.append(f"no file matches {source.path}")
    return lines, report.finish(len(lines), errors, began)


def _matching_paths(pattern: str) -> list[str]:
    paths = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
    return [p for p in paths if os.path.isfile(p)]


def grep(source: FileSource, pattern: str, start: datetime, end: datetime) -> list[LogLine]:
    """Lines of the source's files inside start..end that `pattern` (RE2, never `re`: it
    backtracks) matches, unranked (blocking). The window rule is the fetch's: a line without
    a timestamp goes with the one above it."""
    try:
        compiled = compile_untrusted(pattern)
    except PatternError as exc:
        raise FilesError(f"bad regular expression {pattern!r}: {exc}") from None
    paths = _matching_paths(source.path)
    if not paths:
        raise FilesError(f"no file matches {source.path}")
    found = []
    for path in paths:
        for candidate in _select(path, start, end, DEFAULT_MAX_BYTES):
            if compiled.search(candidate.line.text):
                candidate.line.source = f"{source.name}:{Path(path).name}"
                found.append(candidate.line)
    return found


class FileLogs:
    """A file source as a `LogSource` (tools/sources.py): searched with a regular expression.
    Nothing to reach over the network, so no client and no breaker."""

    def __init__(self, config: FileSource, *, http: object = None, breaker: object = None) -> None:
        self.config = config
        self.name = config.name
        self.where = ""  # its check names the path itself

    async def check(self) -> str:
        return await asyncio.to_thread(_scan, self.config.path)

    async def fetch(
        self, alert: AlertContext, investigation: InvestigationConfig
    ) -> tuple[list[LogLine], SourceReport]:
        return await fetch_logs(self.config, alert, investigation)

    async def search(
        self, query: str, *, start: datetime, end: datetime, limit: int
    ) -> list[LogLine]:
        return await asyncio.to_thread(grep, self.config, query, start, end)


def _scan(pattern: str) -> str:
    """How the files of a source look to `firebreak check` (blocking); FilesError when none
    matches or one cannot be read."""
    files = _matching_paths(pattern)
    if not files:
        raise FilesError(f"no file matches {pattern}")
    unreadable = [p for p in files if not os.access(p, os.R_OK)]
    if unreadable:
        more = f" and {len(unreadable) - 1} more" if len(unreadable) > 1 else ""
        raise FilesError(f"{unreadable[0]} is not readable{more}")
    newest = max(files, key=os.path.getmtime)
    age = time.time() - os.path.getmtime(newest)
    matches = "1 file matches" if len(files) == 1 else f"{len(files)} files match"
    return f"{matches} {pattern}, newest written {duration(age)} ago"
