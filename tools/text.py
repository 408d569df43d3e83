"""Small text and time helpers every room shows things with: one way to cut, to print a
number and to read a timestamp that may have come without a zone."""

from __future__ import annotations

import re
from datetime import UTC, datetime

ELLIPSIS = "…"
# The timestamp a log line starts with (ISO 8601, maybe bracketed).
_LEADING_STAMP = re.compile(
    r"^\s*\[?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?\]?\s*"
)


def truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in "…" when cut."""
    if limit < 1:
        raise ValueError("limit must be >= 1")
    if len(text) <= limit:
        return text
    return text[: limit - len(ELLIPSIS)].rstrip() + ELLIPSIS


def number(value: float | None, digits: int = 4) -> str:
    """A reading for people and models: `n/a` when missing, else `digits` significant ones."""
    return "n/a" if value is None else f"{value:.{digits}g}"


def as_utc(moment: datetime) -> datetime:
    """A zoned moment; a naive one (hand-written payloads, SQLite) is taken as UTC, never as
    the host's local time."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def without_stamp(line: str) -> str:
    """A log line without the timestamp it starts with, for places that show the time
    already (only the line's first 200 characters are looked at)."""
    return _LEADING_STAMP.sub("", line[:200], count=1) + line[200:]
