"""What a follow-up tool call answers, and how it is counted.

A result goes back to the model as text and joins the evidence as items, so the text is held
to what both need: every item redacted before anything shows it, numbered as evidence
(continuing the investigation's `L`/`M`/`K` refs, so the answer can cite it and grounding
accepts it), and the whole capped at `result_chars`; a cut result says so and how to narrow
the query, so the model does not mistake a part for the whole.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from firebreak.agents.tool_args import TOOL_NAMES
from firebreak.tools.evidence import format_log_line, format_metric
from firebreak.tools.files import MAX_LINE_CHARS
from firebreak.tools.kube_objects import KubeFinding, format_finding
from firebreak.tools.metrics import metrics_on
from firebreak.tools.models import LogLine, MetricReading
from firebreak.tools.text import cut

__all__ = ["Item", "ToolMetrics", "ToolResult", "next_ref_numbers", "numbered_text"]

Item = LogLine | MetricReading | KubeFinding
_NOTE_RESERVE = 260  # room kept for the "cut" note inside `result_chars`


@dataclass(frozen=True)
class ToolResult:
    """What a call answered. `text` goes back to the model (a ToolMessage); `items` (redacted,
    numbered `refs`) join the evidence; `timeline_data()` is the TOOL_CALLED event's data."""

    tool: str
    arguments: dict[str, Any]
    text: str
    refs: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    items: list[Item] = field(default_factory=list)
    # ok; error (the call ran and failed); refused (a guard: bad arguments, unknown tool,
    # repeat, over the limit)
    outcome: str = "ok"
    key: str = ""  # the call's identity for repeat detection ("" when it never got that far)

    def timeline_data(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "arguments": self.arguments,
            "results": len(self.refs),
            "seconds": round(self.seconds, 3),
            "error": self.error,
        }


class ToolMetrics:
    """`firebreak_tool_calls_total{tool,outcome}` (ok, error, refused) and
    `firebreak_tool_call_seconds{tool}`, on `registry` (a private one if None); shared when
    several investigations' services use one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = CollectorRegistry() if registry is None else registry
        self.registry = registry
        collectors = metrics_on(registry).tools
        self.calls = collectors.calls
        self.seconds = collectors.seconds

    def observe(self, result: ToolResult) -> None:
        tool = result.tool if result.tool in TOOL_NAMES else "unknown"  # bounded label values
        self.calls.labels(tool=tool, outcome=result.outcome).inc()
        self.seconds.labels(tool=tool).observe(result.seconds)


def next_ref_numbers(refs: Iterable[str]) -> dict[str, int]:
    """The next free number per prefix (`{"L": 13, "M": 4, "K": 1}`) after `refs`, e.g. the
    gathered evidence's refs."""
    numbers = {"L": 1, "M": 1, "K": 1}
    for ref in refs:
        if match := re.fullmatch(r"([A-Z])(\d+)", ref):
            prefix, number = match.group(1), int(match.group(2))
            numbers[prefix] = max(numbers.get(prefix, 1), number + 1)
    return numbers


def numbered_text(
    items: Sequence[Item],
    *,
    header: str,
    empty: str,
    ref: Callable[[int], str],
    redact: Callable[[str], str],
    result_chars: int,
    narrow: str,
) -> tuple[str, list[Item]]:
    """(the text for the model, the items it shows). Items are redacted and numbered
    (`ref(i)` for the i-th shown) in order until `result_chars` is reached; one item too long
    for the whole budget is shortened rather than dropped. `narrow` says how to ask for less
    when some did not fit."""
    budget = result_chars - _NOTE_RESERVE
    lines = [redact(header)]
    used = len(lines[0]) + 1
    shown: list[Item] = []
    for item in items:
        numbered = _redacted(item, redact).model_copy(update={"ref": ref(len(shown))})
        line = _format(numbered)
        if used + len(line) + 1 > budget:
            if shown:
                break
            numbered, line = _shortened(numbered, len(line) - (budget - used - 1))
        lines.append(line)
        shown.append(numbered)
        used += len(line) + 1
    if not items:
        lines.append(redact(empty))
    elif len(shown) < len(items) or any(_was_cut(i) for i in shown):
        lines.append(
            f"[cut at {result_chars} characters: {len(shown)} of {len(items)} results "
            f"shown; to see the rest, narrow the query: {narrow}]"
        )
    return "\n".join(lines)[:result_chars], shown


def _format(item: Item) -> str:
    if isinstance(item, LogLine):
        return format_log_line(item)
    if isinstance(item, MetricReading):
        return format_metric(item)
    return format_finding(item)


def _redacted(item: Item, redact: Callable[[str], str]) -> Item:
    """The item scrubbed, its text first cut to `MAX_LINE_CHARS` (a source may answer a
    megabyte-long line): redaction runs on the loop here, on bounded text only."""
    if isinstance(item, LogLine):
        return item.model_copy(update={"text": redact(cut(item.text, MAX_LINE_CHARS))})
    if isinstance(item, MetricReading):
        series = {k: redact(v) for k, v in item.series.items()}
        return item.model_copy(update={"query": redact(item.query), "series": series})
    text = redact(cut(item.text, MAX_LINE_CHARS))
    return item.model_copy(update={"text": text, "object": redact(cut(item.object, 500))})


def _shortened(item: Item, excess: int) -> tuple[Item, str]:
    """One item too long for the whole budget: its text cut by `excess` characters."""
    short: Item
    if isinstance(item, MetricReading):
        short = item.model_copy(
            update={"query": item.query[: max(1, len(item.query) - excess - 1)]}
        )
    else:
        short = item.model_copy(update={"text": item.text[: max(1, len(item.text) - excess - 1)]})
    short = short.model_copy(update=_mark_cut(short))
    return short, _format(short)


def _mark_cut(item: Item) -> dict[str, str]:
    if isinstance(item, MetricReading):
        return {"query": item.query + "…"}
    return {"text": item.text + "…"}


def _was_cut(item: Item) -> bool:
    return (item.query if isinstance(item, MetricReading) else item.text).endswith("…")
