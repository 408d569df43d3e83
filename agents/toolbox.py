"""The follow-up toolbox: what a model's tool call does, guarded, because a model is not trusted
to behave. The arguments (agents/tool_args.py), the specs offered (agents/tool_specs.py) and the
text a result becomes (agents/tool_results.py) live beside it; calls reach the sources through
their interface (tools/sources.py), so a new backend needs nothing here.

- arguments are validated (pydantic) and queries are sent in the source's own language as
  given, never rendered as templates; an exact repeat is refused with a note;
- every call answers: a call that cannot run (unknown tool or source, bad arguments, bad
  LogQL/PromQL, the source down, too slow) answers `error: <why>` and never raises;
- every result is redacted (the injected redactor), capped at `result_chars` and numbered as
  evidence;
- after `max_calls` calls (every call counts, failed ones too, so an erring model stops as
  surely as a curious one) `offered()` is empty and calls are refused;
- a source's circuit breaker (when one is given) is honoured: an open one answers `error:
  circuit open …` without a request, and each query counts toward it.

A toolbox lives for one step of the investigation graph; the next step builds a new one from
the checkpointed calls (`calls_made`, `earlier`), so repeats are still recognised and refs still
continue after a restart.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import ValidationError

from firebreak.agents.tool_args import (
    ARGUMENTS,
    KubernetesDescribe,
    KubernetesEvents,
    KubernetesLogs,
    QueryMetrics,
    SearchLogs,
    ToolArgs,
)
from firebreak.agents.tool_results import Item, ToolResult, numbered_text
from firebreak.agents.tool_specs import tool_specs
from firebreak.tools import prometheus
from firebreak.tools.breaker import Breaker
from firebreak.tools.errors import Category, SourceError
from firebreak.tools.kube_config import KubernetesError, KubernetesSource
from firebreak.tools.models import MAX_ERROR_CHARS, AlertContext, MetricReading
from firebreak.tools.models import describe_error as _describe_error
from firebreak.tools.sources import (
    ClusterSource,
    LogSource,
    MetricSource,
    open_cluster,
    open_log_source,
    open_metric_source,
)

__all__ = ["MAX_METRICS_RANGE", "ToolError", "Toolbox"]

MAX_METRICS_RANGE = timedelta(hours=24)  # query_metrics reads at most this much, ending at `end`
_PREFIX = {"search_logs": "L", "query_metrics": "M"}  # the kubernetes_* tools answer K refs
_NARROW = {
    "search_logs": "a more selective query, a shorter start..end or a lower limit",
    "query_metrics": "aggregate (sum by, topk) or select fewer series",
    "kubernetes_events": "name one object",
    "kubernetes_describe": "describe the objects one by one",
    "kubernetes_logs": "fewer tail_lines",
}


class ToolError(SourceError):
    """A call that cannot run; the message is for the model. Our refusal of the model's
    request, so a breaker does not count it against the source."""

    def __init__(self, message: str) -> None:
        super().__init__(message, category=Category.BAD_REQUEST)


class Toolbox:
    """The tools for one investigation. Use as an async context manager (it holds the
    Kubernetes clients it opened); `call()` never raises."""

    def __init__(
        self,
        *,
        alert: AlertContext,
        window: tuple[datetime, datetime],
        http: httpx.AsyncClient,
        redact: Callable[[str], str],
        logs: Sequence[Any] = (),  # `sources.logs[]` entries
        metrics: Sequence[Any] = (),  # `sources.metrics[]` entries
        kubernetes: Sequence[KubernetesSource] = (),
        max_calls: int = 6,
        result_chars: int = 4000,
        next_refs: Mapping[str, int] | None = None,
        call_timeout_s: float = 30.0,
        calls_made: int = 0,
        earlier: Sequence[ToolResult] = (),
        breakers: Callable[[str], Breaker | None] | None = None,
    ) -> None:
        """`calls_made` and `earlier`: what the investigation's previous steps called (each
        result with its `key`), so the limit and the repeat guard span the whole loop.
        `breakers`: a source's circuit breaker by its name (each call is guarded here, so the
        sources are opened without theirs)."""
        self.alert = alert
        self.window = window
        self.http = http
        self.redact = redact
        self.max_calls = max_calls
        self.result_chars = result_chars
        self.call_timeout_s = call_timeout_s
        self.calls = calls_made
        self._logs: dict[str, LogSource] = {s.name: open_log_source(s, http=http) for s in logs}
        self._metrics: dict[str, MetricSource] = {
            s.name: open_metric_source(s, http=http) for s in metrics
        }
        self._kubernetes = {s.name: s for s in kubernetes}
        self._specs = tool_specs(list(self._logs), list(self._metrics), list(self._kubernetes))
        self._next = {"L": 1, "M": 1, "K": 1} | dict(next_refs or {})
        self._seen: dict[str, ToolResult] = {r.key: r for r in earlier if r.key}
        self._breakers = breakers or (lambda name: None)
        self._clusters: dict[str, ClusterSource] = {}  # opened at their first call

    async def __aenter__(self) -> Toolbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        clusters, self._clusters = list(self._clusters.values()), {}
        for cluster in clusters:
            await cluster.aclose()

    # -- what the model sees -----------------------------------------------------------------

    @property
    def exhausted(self) -> bool:
        """No call is left (or none was ever allowed)."""
        return self.calls >= self.max_calls

    def offered(self) -> list[dict[str, Any]]:
        """The specs to bind (`chat.bind_tools(toolbox.offered())`); empty once exhausted."""
        return [] if self.exhausted else list(self._specs)

    @property
    def next_refs(self) -> dict[str, int]:
        return dict(self._next)

    # -- a call ------------------------------------------------------------------------------

    async def call(self, name: str, arguments: Mapping[str, Any] | str | None) -> ToolResult:
        """Run one tool call; `arguments` as the model sent them (a dict, or a JSON string)."""
        began = time.perf_counter()
        self.calls += 1
        raw = _as_dict(arguments)
        if self.calls > self.max_calls:
            why = f"the limit of {self.max_calls} tool calls is reached: answer with what you have"
            return self._refused(name, raw or {}, why, began)
        if raw is None:
            return self._refused(name, {}, "bad arguments: not a JSON object", began)
        offered = {spec["function"]["name"] for spec in self._specs}
        if name not in offered:
            known = ", ".join(sorted(offered)) or "none"
            return self._refused(name, raw, f"unknown tool {name!r} (tools: {known})", began)
        try:
            args = ARGUMENTS[name].model_validate({k: v for k, v in raw.items() if v is not None})
        except ValidationError as exc:
            return self._refused(name, raw, _bad_arguments(exc), began)
        shown = args.model_dump(mode="json")
        key = name + json.dumps(shown, sort_keys=True)
        if (earlier := self._seen.get(key)) is not None:
            return self._refused(name, shown, _repeat_note(name, earlier), began)
        try:
            async with asyncio.timeout(self.call_timeout_s):
                items, header, empty = await self._guarded(name, args)
        except TimeoutError:
            why = f"no answer within {self.call_timeout_s:g}s"
            result = self._failed(name, shown, why, began)
        except Exception as exc:  # the call failed; the investigation goes on
            result = self._failed(name, shown, _why(exc), began)
        else:
            result = self._answer(name, shown, items, header, empty, began)
        result = replace(result, key=key)
        self._seen[key] = result
        return result

    def _failed(
        self,
        name: str,
        arguments: dict[str, Any],
        why: str,
        began: float,
        outcome: str = "error",
    ) -> ToolResult:
        why = self.redact(why)
        return ToolResult(
            tool=name,
            arguments=self._scrub(arguments),
            text=f"error: {why}",
            error=why,
            seconds=time.perf_counter() - began,
            outcome=outcome,
        )

    def _refused(self, name: str, arguments: dict[str, Any], why: str, began: float) -> ToolResult:
        return self._failed(name, arguments, why, began, outcome="refused")

    def _scrub(self, arguments: dict[str, Any]) -> dict[str, Any]:
        return {k: self.redact(v) if isinstance(v, str) else v for k, v in arguments.items()}

    def _answer(
        self,
        name: str,
        arguments: dict[str, Any],
        items: Sequence[Item],
        header: str,
        empty: str,
        began: float,
    ) -> ToolResult:
        prefix = _PREFIX.get(name, "K")
        first = self._next[prefix]
        text, shown = numbered_text(
            items,
            header=header,
            empty=empty,
            ref=lambda index: f"{prefix}{first + index}",
            redact=self.redact,
            result_chars=self.result_chars,
            narrow=_NARROW[name],
        )
        self._next[prefix] += len(shown)
        return ToolResult(
            tool=name,
            arguments=self._scrub(arguments),
            text=text,
            refs=[item.ref for item in shown],
            seconds=time.perf_counter() - began,
            items=shown,
        )

    # -- dispatch ----------------------------------------------------------------------------

    async def _guarded(self, name: str, args: ToolArgs) -> tuple[list[Item], str, str]:
        """The call through its source's breaker, when the source has one."""
        breaker = self._breakers(args.source)
        if breaker is None:
            return await self._dispatch(name, args)
        return await breaker.call(lambda: self._dispatch(name, args))

    async def _dispatch(self, name: str, args: ToolArgs) -> tuple[list[Item], str, str]:
        """(items best first, a header line, what to say when there are none)."""
        if isinstance(args, SearchLogs):
            return await self._search_logs(args)
        if isinstance(args, QueryMetrics):
            return await self._query_metrics(args)
        cluster = self._cluster(args.source)
        if isinstance(args, KubernetesEvents):
            found = await cluster.events(args.namespace, args.name)
            about = f"{args.name} in {args.namespace}" if args.name else args.namespace
            return list(found), f"events of {about} ({args.source}), Warning first:", "no events"
        if isinstance(args, KubernetesDescribe):
            found = await cluster.describe(args.kind, args.namespace, args.name)
            return list(found), f"{args.kind} {args.name} ({args.source}):", "nothing found"
        assert isinstance(args, KubernetesLogs)
        found = await cluster.logs(
            args.namespace,
            args.pod,
            container=args.container,
            previous=args.previous,
            tail_lines=args.tail_lines,
        )
        which = "previous " if args.previous else ""
        return (
            list(found),
            f"last {args.tail_lines} lines of the {which}log of {args.namespace}/{args.pod}:",
            "the log is empty",
        )

    def _span(self, args: SearchLogs | QueryMetrics) -> tuple[datetime, datetime]:
        start = args.start or self.window[0]
        end = args.end or max(self.window[1], start + timedelta(minutes=1))
        if end <= start:
            raise ToolError("end must be after start")
        return start, end

    def _lookup(self, sources: Mapping[str, Any], name: str, what: str) -> Any:
        if name not in sources:
            known = ", ".join(sources) or "none"
            raise ToolError(f"unknown source {name!r} ({what} sources: {known})")
        return sources[name]

    async def _search_logs(self, args: SearchLogs) -> tuple[list[Item], str, str]:
        source: LogSource = self._lookup(self._logs, args.source, "log")
        start, end = self._span(args)
        lines = await source.search(args.query, start=start, end=end, limit=args.limit)
        lines.sort(key=lambda line: line.timestamp or end, reverse=True)  # newest first
        found = len(lines)
        header = (
            f"{min(found, args.limit)} lines from {args.source} between {_ts(start)} and "
            f"{_ts(end)}, newest first:"
        )
        return list(lines[: args.limit]), header, "no line matched"

    async def _query_metrics(self, args: QueryMetrics) -> tuple[list[Item], str, str]:
        source: MetricSource = self._lookup(self._metrics, args.source, "metrics")
        start, end, step, capped = _metrics_range(*self._span(args), args.step_s)
        starts_at = self.alert.starts_at
        starts_at = starts_at if starts_at.tzinfo else starts_at.replace(tzinfo=UTC)
        readings = await source.query(
            args.promql, start=start, end=end, step=step, starts_at=starts_at
        )
        readings.sort(key=lambda r: (r.changed_at is None, -_shift(r)))  # the changed first
        header = f"{len(readings)} series from {args.source}, step {step:g}s, changed first:"
        return list(readings), " ".join([*capped, header]), "no series matched"

    def _cluster(self, name: str) -> ClusterSource:
        config = self._lookup(self._kubernetes, name, "Kubernetes")
        if name not in self._clusters:
            self._clusters[name] = open_cluster(config)
        return self._clusters[name]


def _metrics_range(
    start: datetime, end: datetime, step_s: float | None
) -> tuple[datetime, datetime, float, list[str]]:
    """(start, end, step, what was capped) of a range query a model asked for. Clamped rather
    than refused: calls are few (`max_calls`), and the last 24 h at a coarser step answers what
    a wider or finer ask wanted to know. The notes tell the model, so it does not mistake the
    cut range for the whole."""
    end = min(end, datetime.now(UTC))  # future steps only repeat the last sample
    if end <= start:
        start = end - timedelta(minutes=1)
    capped = []
    if end - start > MAX_METRICS_RANGE:
        start = end - MAX_METRICS_RANGE
        hours = MAX_METRICS_RANGE.total_seconds() / 3600
        capped.append(f"[range capped to {hours:g}h: {_ts(start)} to {_ts(end)}]")
    step = step_s or prometheus.choose_step(start, end)
    if step < (least := prometheus.least_step(start, end)):
        capped.append(
            f"[step raised to {least:g}s: Prometheus answers at most "
            f"{prometheus.MAX_POINTS:,} points per series]"
        )
        step = least
    return start, end, step, capped


def _as_dict(arguments: Mapping[str, Any] | str | None) -> dict[str, Any] | None:
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    return dict(arguments) if isinstance(arguments, Mapping) else None


def _repeat_note(name: str, earlier: ToolResult) -> str:
    if earlier.error:
        return f"repeated call: {name} with these arguments already failed ({earlier.error})"
    refs = f" (refs {earlier.refs[0]}–{earlier.refs[-1]})" if earlier.refs else ""
    return (
        f"repeated call: {name} was already called with these arguments; its result is "
        f"above{refs}. Change the arguments, or answer."
    )


def _shift(reading: MetricReading) -> float:
    if reading.baseline is None or reading.current is None:
        return 0.0
    peak = reading.peak if reading.peak is not None else reading.current
    scale = max(abs(reading.baseline), 1e-9)
    return max(abs(reading.current - reading.baseline), abs(peak - reading.baseline)) / scale


def _why(exc: Exception) -> str:
    if isinstance(exc, SourceError | KubernetesError):  # messages written for people
        return str(exc)[:MAX_ERROR_CHARS]
    return _describe_error(exc, ToolError)


def _bad_arguments(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        message = "unknown argument" if error["type"] == "extra_forbidden" else error["msg"]
        problems.append(f"{where}: {message}")
    return "bad arguments: " + "; ".join(problems)


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
