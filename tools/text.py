"""Small text and time helpers every room shows things with: one way to cut, to print a
number, to say how long something took and to read a timestamp that may have come without a
zone."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

ELLIPSIS = "…"
_WORD_BACK = 200
# An `&amp;`-style entity left open at the end of a cut.
_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,4}$")
# The timestamp a log line starts with (ISO 8601, maybe bracketed).
LEADING_STAMP = re.compile(
    r"^\s*\[?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?\]?\s*"
)


def truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in "…" when cut.

    Never cuts an `&amp;`-style entity in half, so it is as safe on escaped Slack markup as
    on plain text."""
    if limit < 1:
        raise ValueError("limit must be >= 1")
    if len(text) <= limit:
        return text
    cut = _PARTIAL_ENTITY.sub("", text[: limit - len(ELLIPSIS)]).rstrip()
    return cut + ELLIPSIS


def cut(text: str, limit: int) -> str:
    """`text` bounded to `limit` characters before anything scans it, the cut marked with "…".

    A cut through the middle of a word drops that word's start (when it began in the last
    `_WORD_BACK` characters): half a token is neither readable nor recognisable as a secret
    any more, so it must not reach a reader. Linear, and cheap for text within the limit."""
    if len(text) <= limit:
        return text
    head = text[: max(0, limit - len(ELLIPSIS))]
    if not text[len(head)].isspace():
        space = max(head.rfind(" "), head.rfind("\t"), head.rfind("\n"))
        if space >= max(0, len(head) - _WORD_BACK):
            head = head[: space + 1]
    return head + ELLIPSIS


def number(value: float | None, digits: int = 4) -> str:
    """A reading for people and models: `n/a` when missing, else `digits` significant ones."""
    return "n/a" if value is None else f"{value:.{digits}g}"


def duration(seconds: float | timedelta | None) -> str:
    """How long, for people and models: `45 s`, `14 min`, `1 h 12 min`, `1 day`, `3 days 2 h`;
    `—` when there is none. Whole units, rounded down, so a duration is never overstated (an
    alert firing for 14 min 50 s has not fired for 15 min yet); a negative one is 0 s."""
    if seconds is None:
        return "—"
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    whole = int(max(0.0, seconds))
    if whole < 90:
        return f"{whole} s"
    minutes = whole // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    said = f"{days} day{'s' if days != 1 else ''}"
    return f"{said} {hours} h" if hours else said


def as_utc(moment: datetime) -> datetime:
    """A zoned moment; a naive one (hand-written payloads, SQLite) is taken as UTC, never as
    the host's local time."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def without_stamp(line: str) -> str:
    """A log line without the timestamp it starts with, for places that show the time
    already (only the line's first 200 characters are looked at)."""
    return LEADING_STAMP.sub("", line[:200], count=1) + line[200:]
