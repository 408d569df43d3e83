"""Small text and time helpers every room shows things with: one way to cut, to print a
number and to read a timestamp that may have come without a zone."""

from __future__ import annotations

import re
from datetime import UTC, datetime

ELLIPSIS = "…"
_WORD_BACK = 200
# The timestamp a log line starts with (ISO 8601, maybe bracketed).
LEADING_STAMP = re.compile(
    r"^\s*\[?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?\]?\s*"
)


def truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in "…" when cut."""
    if limit < 1:
        raise ValueError("limit must be >= 1")
    if len(text) <= limit:
        return text
    return text[: limit - len(ELLIPSIS)].rstrip() + ELLIPSIS


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


def as_utc(moment: datetime) -> datetime:
    """A zoned moment; a naive one (hand-written payloads, SQLite) is taken as UTC, never as
    the host's local time."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def without_stamp(line: str) -> str:
    """A log line without the timestamp it starts with, for places that show the time
    already (only the line's first 200 characters are looked at)."""
    return LEADING_STAMP.sub("", line[:200], count=1) + line[200:]
