"""Prompt templates: Jinja2 files shipped in the `firebreak.prompts` package.

Templates are our own files, not user input, so `StrictUndefined` turns a misspelt variable
into an error instead of a silently empty prompt. Autoescape is off (the output is prompt text,
not HTML). What *is* untrusted is the data put into them (log lines, label values, questions);
the filters here keep that data inside the evidence block it belongs to:

- `oneline`: newlines and other control characters become visible markers, so a log line can
  never start a new line that looks like another evidence item or like the end of the block;
- `clip(n)`: caps the length of a single item;
- the block boundary (`evidence_boundary`) is derived from a hash of the evidence itself, so
  a log line cannot contain the marker that closes its own block.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from typing import Any

import jinja2

from firebreak.tools.models import Evidence, MetricReading
from firebreak.tools.promql import short_metric
from firebreak.tools.text import as_utc, number, truncate, without_stamp

__all__ = [
    "clip",
    "clock",
    "evidence_boundary",
    "fmt_value",
    "load_template",
    "metric_line",
    "oneline",
    "render",
]

PACKAGE = "firebreak.prompts"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def oneline(value: Any) -> str:
    text = "" if value is None else str(value)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", " ⏎ ")
    return _CONTROL.sub("�", text.replace("\t", " "))


def clip(value: Any, limit: int = 1000) -> str:
    text = "" if value is None else str(value)
    return truncate(text, limit) if limit > 0 else ""


def fmt_value(value: Any) -> str:
    """Numbers for a reader: `None` -> `n/a`, floats with at most 4 significant decimals."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def clock(moment: datetime | None, day: str | None = None) -> str:
    """`HH:MM:SS` in UTC; with the date (`MM-DD HH:MM:SS`) when it is not `day` (YYYY-MM-DD,
    the prompt's date)."""
    if moment is None:
        return "--:--:--"
    utc = as_utc(moment).astimezone(UTC)
    if day is not None and utc.strftime("%Y-%m-%d") != day:
        return utc.strftime("%m-%d %H:%M:%S")
    return utc.strftime("%H:%M:%S")


def metric_line(reading: MetricReading) -> str:
    """`name{labels}: baseline -> current (peak p), changed HH:MM:SS` in few tokens."""
    change = (
        "no history"
        if not reading.history
        else f"changed {clock(reading.changed_at)}"
        if reading.changed_at
        else "no change"
    )
    return (
        f"{short_metric(reading.query, reading.series)}: {number(reading.baseline)} -> "
        f"{number(reading.current)} (peak {number(reading.peak)}), {change}"
    )


def _tojson(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def evidence_boundary(evidence: Evidence, *extra: str) -> str:
    """A marker id unguessable by the content it encloses (a hash of that content)."""
    digest = hashlib.sha256(evidence.model_dump_json().encode())
    for part in extra:
        digest.update(part.encode())
    return "EV-" + digest.hexdigest()[:12].upper()


def _load(name: str) -> str:
    try:
        return resources.files(PACKAGE).joinpath(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise jinja2.TemplateNotFound(name) from None


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(
        oneline=oneline,
        clip=clip,
        fmt=fmt_value,
        tojson=_tojson,
        clock=clock,
        logtext=without_stamp,
        metric=metric_line,
    )
    return env


def load_template(name: str) -> jinja2.Template:
    """A template from the package, e.g. `load_template("rca_user.md")`."""
    return _environment().get_template(name)


def render(name: str, /, **variables: Any) -> str:
    """Render a template and strip surrounding blank lines."""
    return load_template(name).render(**variables).strip() + "\n"
