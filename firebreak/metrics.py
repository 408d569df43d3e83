"""Prometheus metrics, kept in one registry owned by the app (no module-level collectors).

`firebreak_incidents_open{status}` and `firebreak_slack_outbox_pending` are read from the store
at each scrape (`store.counts.refresh_open_gauge`, `bot.slack_outbox.refresh_pending_gauge`),
not counted up and down in memory: they are then right after a restart and the same on every
replica (aggregate replicas with `max`, not `sum`). Components get the collectors they feed as
constructor arguments (firebreak/components.py).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# 30 s to a day: incidents are acknowledged in minutes and resolved in minutes to hours.
INCIDENT_BUCKETS_S = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
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
