"""Prometheus metrics, kept in one registry owned by the app (no module-level collectors).

`firebreak_incidents_open{status}` is read from the store at each scrape
(`store.counts.refresh_open_gauge`), not counted up and down in memory: it is then right after
a restart and the same on every replica (aggregate replicas with `max`, not `sum`).
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
