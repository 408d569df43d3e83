"""Render source query templates (LogQL, PromQL, Lucene) from an alert.

Why these choices:
- Alert labels differ between alert sources, so a template must survive a label the alert
  does not have: missing values render as "" (`ChainableUndefined`, so `labels.a.b` works too)
  instead of raising like `StrictUndefined` would.
- Templates come from configuration that may be edited by many people; the sandbox keeps a
  template from reaching Python internals.
- Label values are attacker-influenced (anyone who can make an alert fire chooses them) and
  land inside double-quoted string literals. Every `{{ ... }}` output is therefore escaped for
  such a literal (backslash, double quote, control characters) automatically. `| raw` opts out,
  `| regex` escapes a value for use inside `=~"..."` matchers.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from firebreak.tools.models import AlertContext
from firebreak.tools.text import as_utc

__all__ = ["QueryTemplateError", "Raw", "alert_window", "escape_literal", "render_query"]

_LITERAL_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_LITERAL_RE = re.compile(r'[\\"\n\r\t]')


class QueryTemplateError(ValueError):
    """The template is malformed or failed to render; the message says where."""


class Raw(str):
    """A value already safe for the query text: `finalize` leaves it alone."""

    __slots__ = ()


def escape_literal(value: object) -> str:
    """Escape a value for a double-quoted LogQL/PromQL/Lucene string literal."""
    return _LITERAL_RE.sub(lambda m: _LITERAL_ESCAPES[m.group()], str(value))


def _raw(value: object) -> Raw:
    return Raw("" if value is None or isinstance(value, ChainableUndefined) else value)


def _regex(value: object) -> Raw:
    """Regex-escape, then literal-escape: `a.b` becomes `a\\\\.b` inside `=~"..."`."""
    return Raw(escape_literal(re.escape(str(value))))


def _finalize(value: Any) -> Any:
    if value is None or isinstance(value, ChainableUndefined):
        return ""
    if isinstance(value, Raw):
        return value
    return escape_literal(value)


@lru_cache(maxsize=1)
def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        undefined=ChainableUndefined,
        finalize=_finalize,
        autoescape=False,
        keep_trailing_newline=False,
    )
    env.filters["raw"] = _raw
    env.filters["regex"] = _regex
    env.filters["literal"] = lambda value: Raw(escape_literal(value))
    return env


@lru_cache(maxsize=256)
def _compile(template: str) -> Any:
    try:
        return _environment().from_string(template)
    except TemplateError as exc:
        raise QueryTemplateError(f"bad query template {template!r}: {exc}") from None


def render_query(template: str, alert: AlertContext, **extra: Any) -> str:
    """Render `template` with `labels`, `annotations`, `starts_at`, `ends_at` (plus `extra`)."""
    variables = alert.template_vars() | extra
    try:
        return str(_compile(template).render(**variables)).strip()
    except QueryTemplateError:
        raise
    except TemplateError as exc:
        raise QueryTemplateError(f"query template {template!r} failed: {exc}") from None


def alert_window(
    alert: AlertContext, lookback_s: float, lookahead_s: float
) -> tuple[datetime, datetime]:
    """The evidence window `[starts_at - lookback, starts_at + lookahead]`, timezone-aware.

    Alertmanager timestamps are always zoned; a naive one (hand-written test payloads) is
    taken as UTC rather than as the host's local time.
    """
    starts_at = as_utc(alert.starts_at)
    return starts_at - timedelta(seconds=lookback_s), starts_at + timedelta(seconds=lookahead_s)
