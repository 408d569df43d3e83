"""Every Prometheus collector Firebreak exports is declared here, on a registry passed in
(no module-level collectors; the app owns one registry, tests make their own).

`firebreak_incidents_open{status}` and `firebreak_slack_outbox_pending` are read from the store
at each scrape (`store.counts.refresh_open_gauge`, `bot.slack_outbox.refresh_pending_gauge`),
not counted up and down in memory: they are then right after a restart and the same on every
replica (aggregate replicas with `max`, not `sum`). Components get the collectors they feed as
constructor arguments (firebreak/components.py), or find them with `metrics_on(registry)`:
several breakers, gateways and toolboxes on one registry share one set of collectors.
"""

from __future__ import annotations

from functools import cached_property
from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = [
    "BreakerMetrics",
    "LLMMetrics",
    "Metrics",
    "ScheduleMetrics",
    "ToolCallMetrics",
    "metrics_on",
]

# 30 s to a day: incidents are acknowledged in minutes and resolved in minutes to hours.
INCIDENT_BUCKETS_S = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400)
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 120)
LLM_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 120, 240, 480)
TOOL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

_BY_REGISTRY: WeakKeyDictionary[CollectorRegistry, Metrics] = WeakKeyDictionary()


def metrics_on(registry: CollectorRegistry) -> Metrics:
    """The one `Metrics` of `registry`, made on first use."""
    existing = _BY_REGISTRY.get(registry)
    return existing if existing is not None else Metrics(registry)


class Metrics:
    """Every collector on one registry: the app's own, made here, and the groups the tools
    feed (`breakers`, `llm`, `tools`, `schedules`), each made the first time it is asked for.
    `metrics_on(registry)` gives every caller the same one."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        _BY_REGISTRY[self.registry] = self
        self.alerts_received = Counter(
            "firebreak_alerts_received",
            "Alerts received from Alertmanager, by status",
            ["status"],
            registry=self.registry,
        )
        self.incidents_opened = Counter(
            "firebreak_incidents_opened",
            "Incidents opened (created or reopened)",
            registry=self.registry,
        )
        self.incidents_resolved = Counter(
            "firebreak_incidents_resolved", "Incidents resolved", registry=self.registry
        )
        self.webhook_rejected = Counter(
            "firebreak_webhook_rejected",
            "Webhook requests refused, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.webhook_repaired = Counter(
            "firebreak_webhook_repaired",
            "Webhook requests stored after repairing their text (NUL replaced), by problem",
            ["problem"],
            registry=self.registry,
        )
        self.webhook_latency = Histogram(
            "firebreak_webhook_latency_seconds",
            "Alertmanager webhook latency until durable",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.investigations = Counter(
            "firebreak_investigations",
            "Investigations finished, by execution status",
            ["execution_status"],
            registry=self.registry,
        )
        self.time_to_acknowledge = Histogram(
            "firebreak_time_to_acknowledge_seconds",
            "Time from an incident's opening to its acknowledgement",
            buckets=INCIDENT_BUCKETS_S,
            registry=self.registry,
        )
        self.time_to_resolve = Histogram(
            "firebreak_time_to_resolve_seconds",
            "Time from an incident's opening to its resolve (by a person or by Alertmanager)",
            buckets=INCIDENT_BUCKETS_S,
            registry=self.registry,
        )
        self.incidents_open = Gauge(
            "firebreak_incidents_open",
            "Open incidents by status, counted in the store at each scrape",
            ["status"],
            registry=self.registry,
        )
        self.investigation_seconds = Histogram(
            "firebreak_investigation_duration_seconds",
            "Investigation run time (until done, failed or paused for approval), by status",
            ["status"],
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
            registry=self.registry,
        )
        self.llm_prompt_tokens = Histogram(
            "firebreak_llm_prompt_tokens",
            "Tokens of the root-cause prompt the LLM read (as the server counted them)",
            buckets=(250, 500, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 16000, 32000),
            registry=self.registry,
        )
        self.slack_outbox_pending = Gauge(
            "firebreak_slack_outbox_pending",
            "Slack messages written to the outbox and not delivered yet, counted at each scrape",
            registry=self.registry,
        )
        self.slack_api_errors = Counter(
            "firebreak_slack_api_errors",
            "Failed Slack Web API calls, by method and error",
            ["method", "error"],
            registry=self.registry,
        )

    @cached_property
    def breakers(self) -> BreakerMetrics:
        return BreakerMetrics(self.registry)

    @cached_property
    def llm(self) -> LLMMetrics:
        return LLMMetrics(self.registry)

    @cached_property
    def tools(self) -> ToolCallMetrics:
        return ToolCallMetrics(self.registry)

    @cached_property
    def schedules(self) -> ScheduleMetrics:
        return ScheduleMetrics(self.registry)


class BreakerMetrics:
    """The breakers' collectors on one registry, shared by every breaker registered on it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.state = Gauge(
            "firebreak_circuit_breaker_state",
            "Circuit breaker state per dependency: 0 closed, 1 half-open, 2 open",
            ["dependency"],
            registry=registry,
        )
        self.forced = Gauge(
            "firebreak_circuit_breaker_forced",
            "1 while an operator holds the breaker open",
            ["dependency"],
            registry=registry,
        )
        self.transitions = Counter(
            "firebreak_circuit_breaker_transitions",
            "Circuit breaker state changes",
            ["dependency", "from", "to"],
            registry=registry,
        )
        self.calls = Counter(
            "firebreak_circuit_breaker_calls",
            "Calls through a circuit breaker by outcome (success, failure, slow, rejected)",
            ["dependency", "outcome"],
            registry=registry,
        )
        self.errors = Counter(
            "firebreak_circuit_breaker_errors",
            "Failed or refused calls by category (transient, prolonged, circuit_open, "
            "rate_limited, timeout, bad_request)",
            ["dependency", "category"],
            registry=registry,
        )
        self.duration = Histogram(
            "firebreak_circuit_breaker_call_seconds",
            "Duration of calls through a circuit breaker",
            ["dependency"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.actions = Counter(
            "firebreak_circuit_breaker_operator_actions",
            "Operator actions on circuit breakers (open, close, reset)",
            ["dependency", "action"],
            registry=registry,
        )


class LLMMetrics:
    """The LLM gateway's calls and their latency, by provider."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "firebreak_llm_calls",
            "LLM HTTP calls by provider and outcome (ok, timeout, unreachable, "
            "server_error, rate_limited, rejected, unexpected, circuit_open, offline)",
            ["provider", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "firebreak_llm_call_seconds",
            "LLM HTTP call latency",
            ["provider"],
            buckets=LLM_BUCKETS,
            registry=registry,
        )


class ToolCallMetrics:
    """`firebreak_tool_calls_total{tool,outcome}` (ok, error, refused) and
    `firebreak_tool_call_seconds{tool}`: the reasoning agent's follow-up tool calls."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "firebreak_tool_calls",
            "Follow-up tool calls of the reasoning agent, by tool and outcome (ok, error, refused)",
            ["tool", "outcome"],
            registry=registry,
        )
        self.seconds = Histogram(
            "firebreak_tool_call_seconds",
            "Follow-up tool call duration",
            ["tool"],
            buckets=TOOL_BUCKETS,
            registry=registry,
        )


class ScheduleMetrics:
    """On-call schedules read from iCal."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.refresh_failures = Counter(
            "firebreak_schedule_refresh_failures",
            "iCal schedule reads that failed (the last good copy was kept), by schedule",
            ["schedule"],
            registry=registry,
        )
