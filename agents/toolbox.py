"""The reasoning agent's follow-up tools: what it is offered, what a call does, what it gets back.

Everything about the tools but the graph wiring: the specs (OpenAI function format, which
`bind_tools` of both `ChatOpenAI` and `ChatOllama` accepts), dispatch to the sources' own query
functions, and the guards a model's calls need, because a model is not trusted to behave:

- arguments are validated (pydantic) and queries are sent in the source's own language as
  given, never rendered as templates; an exact repeat is refused with a note;
- every call answers: a call that cannot run (unknown tool or source, bad arguments, bad
  LogQL/PromQL, the source down, too slow) answers `error: <why>` and never raises;
- every result is redacted (the injected redactor) and capped at `result_chars`, a cut result
  says so and how to narrow the query;
- shown items are numbered as evidence, continuing the investigation's `L`/`M`/`K` refs, so the
  answer can cite them and grounding accepts them;
- after `max_calls` calls (every call counts, failed ones too, so an erring model stops as
  surely as a curious one) `offered()` is empty and calls are refused;
- a source's circuit breaker (when one is given) is honoured: an open one answers `error:
  circuit open …` without a request, and each query counts toward it.

A toolbox lives for one step of the investigation graph; the next step builds a new one from
the checkpointed calls (`calls_made`, `earlier`), so repeats are still recognised and refs still
continue after a restart. `ToolMetrics` counts and times the calls on the app's registry.

Only `tools/` is imported: source configs are passed in and told apart by their `type`
(`loki`, `elasticsearch`, `file`; metrics sources are Prometheus), so no config import is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from firebreak.tools import elasticsearch, files, loki, prometheus
from firebreak.tools import kubernetes as kube
from firebreak.tools.breaker import Breaker, shared_collector
from firebreak.tools.errors import Category, SourceError
from firebreak.tools.evidence import format_log_line, format_metric
from firebreak.tools.kube_objects import KubeFinding, format_finding
from firebreak.tools.kubernetes import KubeClient, KubernetesError, KubernetesSource
from firebreak.tools.models import MAX_ERROR_CHARS, AlertContext, LogLine, MetricReading
from firebreak.tools.models import describe_error as _describe_error
from firebreak.tools.safe_regex import PatternError, compile_untrusted
from firebreak.tools.text import cut

__all__ = [
    "TOOL_NAMES",
    "ToolMetrics",
    "ToolResult",
    "Toolbox",
    "is_tools_refusal",
    "next_ref_numbers",
    "supports_tools",
    "tool_specs",
]

Item = LogLine | MetricReading | KubeFinding
TOOL_NAMES = (
    "search_logs",
    "query_metrics",
    "kubernetes_events",
    "kubernetes_describe",
    "kubernetes_logs",
)
_NOTE_RESERVE = 260  # room kept for the "cut" note inside `result_chars`
MAX_METRICS_RANGE = timedelta(hours=24)  # query_metrics reads at most this much, ending at `end`
_OWN_ERRORS = (
    loki.LokiError,
    elasticsearch.ElasticsearchError,
    prometheus.PrometheusError,
    KubernetesError,
)


class ToolError(SourceError):
    """A call that cannot run; the message is for the model. Our refusal of the model's
    request, so a breaker does not count it against the source."""

    def __init__(self, message: str) -> None:
        super().__init__(message, category=Category.BAD_REQUEST)


# --------------------------------------------------------------------------------------------
# Arguments, exactly as the contract names them


_NAME = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    source: str


class _Span(_Args):
    start: datetime | None = None
    end: datetime | None = None

    @field_validator("start", "end")
    @classmethod
    def _zoned(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    @model_validator(mode="after")
    def _ordered(self) -> _Span:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class SearchLogs(_Span):
    query: str = Field(min_length=1, max_length=2000)
    limit: int = Field(50, ge=1, le=500)


class QueryMetrics(_Span):
    promql: str = Field(min_length=1, max_length=2000)
    step_s: float | None = Field(None, ge=1, le=86_400)


class KubernetesEvents(_Args):
    namespace: str = Field(pattern=_LABEL)
    name: str | None = Field(None, pattern=_NAME)


class KubernetesDescribe(_Args):
    kind: str
    namespace: str = Field("", pattern=r"^$|" + _LABEL)  # nodes have none
    name: str = Field(pattern=_NAME)

    @field_validator("kind")
    @classmethod
    def _known(cls, kind: str) -> str:
        if kind.lower() not in kube.KINDS:
            raise ValueError("kind must be one of pod, deployment, replicaset, job, node")
        return kube.KINDS[kind.lower()]

    @model_validator(mode="after")
    def _namespaced(self) -> KubernetesDescribe:
        if self.kind != "node" and not self.namespace:
            raise ValueError(f"namespace is required for a {self.kind}")
        return self


class KubernetesLogs(_Args):
    namespace: str = Field(pattern=_LABEL)
    pod: str = Field(pattern=_NAME)
    container: str | None = Field(None, pattern=_LABEL)
    previous: bool = False
    tail_lines: int = Field(100, ge=1, le=1000)


_ARGUMENTS: dict[str, type[_Args]] = {
    "search_logs": SearchLogs,
    "query_metrics": QueryMetrics,
    "kubernetes_events": KubernetesEvents,
    "kubernetes_describe": KubernetesDescribe,
    "kubernetes_logs": KubernetesLogs,
}
_PREFIX = {"search_logs": "L", "query_metrics": "M"}  # the kubernetes_* tools answer K refs
_NARROW = {
    "search_logs": "a more selective query, a shorter start..end or a lower limit",
    "query_metrics": "aggregate (sum by, topk) or select fewer series",
    "kubernetes_events": "name one object",
    "kubernetes_describe": "describe the objects one by one",
    "kubernetes_logs": "fewer tail_lines",
}


# --------------------------------------------------------------------------------------------
# Specs


def _spec(name: str, description: str, properties: dict[str, Any], required: list[str]):
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            },
        },
    }


def _source(names: Sequence[str]) -> dict[str, Any]:
    return {"type": "string", "enum": list(names)}


_TIME = {"type": "string", "description": "RFC 3339"}
_DESCRIBABLE = ("pod", "deployment", "replicaset", "job", "node")


def tool_specs(
    logs: Sequence[str] = (), metrics: Sequence[str] = (), kubernetes: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The specs of the tools whose kind of source is configured (by source name)."""
    specs = []
    if logs:
        specs.append(
            _spec(
                "search_logs",
                "Search a log source in its own language (Loki: LogQL; Elasticsearch: query "
                "string; files: regular expression). Newest first; default: the alert's window.",
                {
                    "source": _source(logs),
                    "query": {"type": "string"},
                    "start": _TIME,
                    "end": _TIME,
                    "limit": {"type": "integer", "minimum": 1, "maximum": 500},
                },
                ["source", "query"],
            )
        )
    if metrics:
        specs.append(
            _spec(
                "query_metrics",
                "PromQL range query, at most 24 h (default: the alert's window); each series "
                "as baseline, current, peak, change point.",
                {
                    "source": _source(metrics),
                    "promql": {"type": "string"},
                    "start": _TIME,
                    "end": _TIME,
                    "step_s": {"type": "number", "minimum": 1},
                },
                ["source", "promql"],
            )
        )
    if kubernetes:
        cluster = _source(kubernetes)
        namespace = {"type": "string"}
        specs += [
            _spec(
                "kubernetes_events",
                "Events in a namespace (or of one object), Warning first, de-duplicated.",
                {
                    "source": cluster,
                    "namespace": namespace,
                    "name": {"type": "string", "description": "the involved object's name"},
                },
                ["source", "namespace"],
            ),
            _spec(
                "kubernetes_describe",
                "Status, conditions, restarts, last termination and images of one object; "
                "of a job, how it ended (e.g. Failed BackoffLimitExceeded) and its pod counts.",
                {
                    "source": cluster,
                    "kind": {"type": "string", "enum": list(_DESCRIBABLE)},
                    "namespace": namespace,
                    "name": {"type": "string"},
                },
                ["source", "kind", "namespace", "name"],
            ),
            _spec(
                "kubernetes_logs",
                "A container's last log lines. previous=false (the default) reads the "
                "current container, also one that has terminated (a failed Job's pod, a "
                "Completed or Error container): its own output, where it said why it "
                "stopped. previous=true reads the container before the last restart (a "
                "crash loop, an OOM kill).",
                {
                    "source": cluster,
                    "namespace": namespace,
                    "pod": {"type": "string"},
                    "container": {"type": "string"},
                    "previous": {"type": "boolean"},
                    "tail_lines": {"type": "integer", "minimum": 1, "maximum": 1000},
                },
                ["source", "namespace", "pod"],
            ),
        ]
    return specs


def next_ref_numbers(refs: Iterable[str]) -> dict[str, int]:
    """The next free number per prefix (`{"L": 13, "M": 4, "K": 1}`) after `refs`, e.g. the
    gathered evidence's refs."""
    numbers = {"L": 1, "M": 1, "K": 1}
    for ref in refs:
        if match := re.fullmatch(r"([A-Z])(\d+)", ref):
            prefix, number = match.group(1), int(match.group(2))
            numbers[prefix] = max(numbers.get(prefix, 1), number + 1)
    return numbers


# --------------------------------------------------------------------------------------------
# Results


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
        self.calls = shared_collector(
            registry,
            "firebreak_tool_calls",
            lambda: Counter(
                "firebreak_tool_calls",
                "Follow-up tool calls of the reasoning agent, by tool and outcome (ok, error, "
                "refused)",
                ["tool", "outcome"],
                registry=registry,
            ),
        )
        self.seconds = shared_collector(
            registry,
            "firebreak_tool_call_seconds",
            lambda: Histogram(
                "firebreak_tool_call_seconds",
                "Follow-up tool call duration",
                ["tool"],
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                registry=registry,
            ),
        )

    def observe(self, result: ToolResult) -> None:
        tool = result.tool if result.tool in TOOL_NAMES else "unknown"  # bounded label values
        self.calls.labels(tool=tool, outcome=result.outcome).inc()
        self.seconds.labels(tool=tool).observe(result.seconds)


def _format(item: Item) -> str:
    if isinstance(item, LogLine):
        return format_log_line(item)
    if isinstance(item, MetricReading):
        return format_metric(item)
    return format_finding(item)


def _redacted(item: Item, redact: Callable[[str], str]) -> Item:
    """The item scrubbed, its text first cut to `files.MAX_LINE_CHARS` (a source may answer a
    megabyte-long line): redaction runs on the loop here, on bounded text only."""
    if isinstance(item, LogLine):
        return item.model_copy(update={"text": redact(cut(item.text, files.MAX_LINE_CHARS))})
    if isinstance(item, MetricReading):
        series = {k: redact(v) for k, v in item.series.items()}
        return item.model_copy(update={"query": redact(item.query), "series": series})
    text = redact(cut(item.text, files.MAX_LINE_CHARS))
    return item.model_copy(update={"text": text, "object": redact(cut(item.object, 500))})


def _why(exc: Exception) -> str:
    if isinstance(exc, _OWN_ERRORS):
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


# --------------------------------------------------------------------------------------------
# The toolbox


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
        logs: Sequence[Any] = (),  # LokiSource | ElasticsearchSource | FileSource configs
        metrics: Sequence[Any] = (),  # PrometheusSource configs
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
        `breakers`: a source's circuit breaker by its name."""
        self.alert = alert
        self.window = window
        self.http = http
        self.redact = redact
        self.max_calls = max_calls
        self.result_chars = result_chars
        self.call_timeout_s = call_timeout_s
        self.calls = calls_made
        self._logs = {s.name: s for s in logs}
        self._metrics = {s.name: s for s in metrics}
        self._kubernetes = {s.name: s for s in kubernetes}
        self._specs = tool_specs(list(self._logs), list(self._metrics), list(self._kubernetes))
        self._next = {"L": 1, "M": 1, "K": 1} | dict(next_refs or {})
        self._seen: dict[str, ToolResult] = {r.key: r for r in earlier if r.key}
        self._breakers = breakers or (lambda name: None)
        self._clients: dict[str, KubeClient] = {}
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Toolbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._stack.aclose()
        self._clients.clear()

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
            args = _ARGUMENTS[name].model_validate({k: v for k, v in raw.items() if v is not None})
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
        budget = self.result_chars - _NOTE_RESERVE
        lines = [self.redact(header)]
        used = len(lines[0]) + 1
        shown: list[Item] = []
        for item in items:
            numbered = _redacted(item, self.redact).model_copy(
                update={"ref": f"{prefix}{self._next[prefix] + len(shown)}"}
            )
            line = _format(numbered)
            if used + len(line) + 1 > budget:
                if shown:
                    break
                numbered, line = _shortened(numbered, len(line) - (budget - used - 1))
            lines.append(line)
            shown.append(numbered)
            used += len(line) + 1
        self._next[prefix] += len(shown)
        if not items:
            lines.append(self.redact(empty))
        elif len(shown) < len(items) or any(_was_cut(i) for i in shown):
            lines.append(
                f"[cut at {self.result_chars} characters: {len(shown)} of {len(items)} results "
                f"shown; to see the rest, narrow the query: {_NARROW[name]}]"
            )
        return ToolResult(
            tool=name,
            arguments=self._scrub(arguments),
            text="\n".join(lines)[: self.result_chars],
            refs=[item.ref for item in shown],
            seconds=time.perf_counter() - began,
            items=shown,
        )

    # -- dispatch ----------------------------------------------------------------------------

    async def _guarded(self, name: str, args: _Args) -> tuple[list[Item], str, str]:
        """The call through its source's breaker, when the source has one."""
        breaker = self._breakers(args.source)
        if breaker is None:
            return await self._dispatch(name, args)
        return await breaker.call(lambda: self._dispatch(name, args))

    async def _dispatch(self, name: str, args: _Args) -> tuple[list[Item], str, str]:
        """(items best first, a header line, what to say when there are none)."""
        if isinstance(args, SearchLogs):
            return await self._search_logs(args)
        if isinstance(args, QueryMetrics):
            return await self._query_metrics(args)
        client = await self._kube(args.source)
        if isinstance(args, KubernetesEvents):
            found = await kube.events(client, args.namespace, args.name)
            about = f"{args.name} in {args.namespace}" if args.name else args.namespace
            return list(found), f"events of {about} ({args.source}), Warning first:", "no events"
        if isinstance(args, KubernetesDescribe):
            found = await kube.describe(client, args.kind, args.namespace, args.name)
            return list(found), f"{args.kind} {args.name} ({args.source}):", "nothing found"
        assert isinstance(args, KubernetesLogs)
        found = await kube.logs(
            client,
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

    def _span(self, args: _Span) -> tuple[datetime, datetime]:
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
        source = self._lookup(self._logs, args.source, "log")
        start, end = self._span(args)
        kind = getattr(source, "type", "")
        if kind == "loki":
            entries = await loki.query_range(
                self.http, source.url, args.query, start=start, end=end, limit=args.limit,
                timeout_s=source.timeout_s,
            )  # fmt: skip
            lines = [
                LogLine(source=source.name, timestamp=ts, text=text) for ts, text, _ in entries
            ]
        elif kind == "elasticsearch":
            hits = await elasticsearch.search(
                self.http, source, args.query, start=start, end=end, size=args.limit
            )
            lines = [elasticsearch.to_line(hit, source) for hit in hits]
        elif kind == "file":
            try:  # the model's pattern: RE2, linear in the line, never `re` (it backtracks)
                pattern = compile_untrusted(args.query)
            except PatternError as exc:
                raise ToolError(f"bad regular expression {args.query!r}: {exc}") from None
            lines = await asyncio.to_thread(_grep, source, pattern, start, end)
        else:
            raise ToolError(f"source {args.source!r} has an unknown type {kind!r}")
        lines.sort(key=lambda line: line.timestamp or end, reverse=True)  # newest first
        found = len(lines)
        header = (
            f"{min(found, args.limit)} lines from {args.source} between {_ts(start)} and "
            f"{_ts(end)}, newest first:"
        )
        return list(lines[: args.limit]), header, "no line matched"

    async def _query_metrics(self, args: QueryMetrics) -> tuple[list[Item], str, str]:
        source = self._lookup(self._metrics, args.source, "metrics")
        start, end, step, capped = _metrics_range(*self._span(args), args.step_s)
        series = await prometheus.query_range(
            self.http, source.url, args.promql, start=start, end=end, step=step,
            timeout_s=source.timeout_s,
        )  # fmt: skip
        starts_at = self.alert.starts_at
        starts_at = starts_at if starts_at.tzinfo else starts_at.replace(tzinfo=UTC)
        readings = [
            prometheus.summarise(
                source.name,
                args.promql,
                {str(k): str(v) for k, v in (s.get("metric") or {}).items()},
                s.get("values") or [],
                starts_at,
            )
            for s in series
        ]
        readings.sort(key=lambda r: (r.changed_at is None, -_shift(r)))  # the changed first
        header = f"{len(readings)} series from {args.source}, step {step:g}s, changed first:"
        return list(readings), " ".join([*capped, header]), "no series matched"

    async def _kube(self, name: str) -> KubeClient:
        source = self._lookup(self._kubernetes, name, "Kubernetes")
        if name not in self._clients:
            self._clients[name] = await self._stack.enter_async_context(KubeClient(source))
        return self._clients[name]


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


def _shortened(item: Item, excess: int) -> tuple[Item, str]:
    """One item too long for the whole budget: its text cut by `excess` characters."""
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


def _shift(reading: MetricReading) -> float:
    if reading.baseline is None or reading.current is None:
        return 0.0
    peak = reading.peak if reading.peak is not None else reading.current
    scale = max(abs(reading.baseline), 1e-9)
    return max(abs(reading.current - reading.baseline), abs(peak - reading.baseline)) / scale


def _grep(source: Any, pattern: Any, start: datetime, end: datetime) -> list[LogLine]:
    """Lines of the source's files matching `pattern` (RE2) inside start..end (blocking).
    Lines without a timestamp take the one above them, as the file source reads them; each
    line is cut (`files.MAX_LINE_CHARS`) before it is matched."""
    paths = [p for p in sorted(glob.glob(os.path.expanduser(source.path), recursive=True))]
    paths = [p for p in paths if os.path.isfile(p)]
    if not paths:
        raise ToolError(f"no file matches {source.path}")
    found = []
    for path in paths:
        current: datetime | None = None
        for text in files.read_tail(path):
            stamp = files.parse_timestamp(text, reference=end)
            current = stamp or current
            if current is not None and not start <= current <= end:
                continue
            if pattern.search(text):
                found.append(
                    LogLine(source=f"{source.name}:{Path(path).name}", timestamp=current, text=text)
                )
    return found


# --------------------------------------------------------------------------------------------
# Can the model call tools at all?


async def supports_tools(
    provider: str,
    base_url: str,
    model: str,
    *,
    http: httpx.AsyncClient | None = None,
    timeout_s: float = 5.0,
) -> bool:
    """Whether the configured model takes tools.

    Ollama says so: `/api/show` lists `capabilities` (older servers without the list: a chat
    template that mentions `.Tools`). An unreachable server or unknown model: False (the
    investigation goes on without tools and reports the LLM error the usual way).
    OpenAI-compatible servers have no such listing: True, and a 400 answer to the first
    request with tools (`is_tools_refusal`) means "no tools": ask again without them.
    """
    if provider == "openai":
        return True
    if provider != "ollama":
        return False
    owned = http is None
    client = http or httpx.AsyncClient(timeout=timeout_s)
    try:
        response = await client.post(
            base_url.rstrip("/") + "/api/show", json={"model": model}, timeout=timeout_s
        )
        if response.status_code != 200:
            return False
        shown = response.json()
    except (httpx.HTTPError, ValueError):
        return False
    finally:
        if owned:
            await client.aclose()
    if not isinstance(shown, dict):
        return False
    capabilities = shown.get("capabilities")
    if isinstance(capabilities, list):
        return "tools" in capabilities
    return ".Tools" in str(shown.get("template") or "")


def is_tools_refusal(exc: BaseException) -> bool:
    """An HTTP 400 answer (anywhere in the exception's cause chain: `openai.BadRequestError`,
    `ollama.ResponseError`, httpx, or the LLM gateway's wrapper) to a request that offered
    tools: the model or server takes no tools."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        status = getattr(current, "status_code", None)
        if status is None:
            status = getattr(getattr(current, "response", None), "status_code", None)
        if status == 400:
            return True
        current = current.__cause__ or current.__context__
    return False
