"""Text every back end can hold: U+0000 (NUL) is stored as U+FFFD.

PostgreSQL refuses NUL in `text` and `varchar` ("text fields cannot contain NUL") and in
`jsonb` ("unsupported Unicode escape sequence"). Alertmanager passes label values through as
given, log lines can carry one, and so can a model's answer: a NUL in any of them failed the
whole write, and for a webhook that meant a 5xx that Alertmanager retried forever while the
alert paged nobody. SQLite could store the same text, so both back ends replace NUL the same
way, and an alert reads back identically wherever it is stored. U+FFFD (the replacement
character) shows that something was there, as a decoder does for bytes it cannot read.

Two ways in, both bound where values leave for the database: the column types `SafeText` and
`SafeString` for text columns, and `json_dumps` as every engine's JSON serializer (store/db.py)
for JSON columns; it looks at the serialized text first, so a document without NUL (all of
them, in practice) costs one substring search.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import String, Text, TypeDecorator

NUL = "\x00"
REPLACEMENT = "\ufffd"
_ESCAPED_NUL = "\\u0000"  # how json.dumps writes NUL (ensure_ascii or not)


def without_nul(value: str) -> str:
    return value.replace(NUL, REPLACEMENT) if NUL in value else value


def json_without_nul(value: Any) -> Any:
    """`value` (JSON-shaped) with NUL replaced in every string, keys included."""
    if isinstance(value, str):
        return without_nul(value)
    if isinstance(value, dict):
        return {json_without_nul(k): json_without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_without_nul(item) for item in value]
    return value


def json_dumps(value: Any) -> str:
    """`json.dumps` as SQLAlchemy calls it, with NUL replaced. A match of the escape in the
    text can also be a literal backslash followed by "u0000"; that case only takes the slower
    path, which changes nothing in it."""
    text = json.dumps(value)
    if _ESCAPED_NUL not in text:
        return text
    return json.dumps(json_without_nul(value))


class _NulFree(TypeDecorator[str]):
    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if isinstance(value, str) and NUL in value:
            return value.replace(NUL, REPLACEMENT)
        return value


class SafeText(_NulFree):
    """`Text` that never sends NUL to the database."""

    impl = Text
    cache_ok = True  # SQLAlchemy reads it from each class itself


class SafeString(_NulFree):
    """`String(n)` that never sends NUL to the database."""

    impl = String
    cache_ok = True
