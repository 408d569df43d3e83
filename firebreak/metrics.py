"""Prometheus metrics, kept in one registry owned by the app (no module-level collectors).

`firebreak_incidents_open{status}` is read from the store at each scrape
(`refresh_incidents_open`), not counted up and down in memory: it is then right after a
restart and the same on every replica (aggregate replicas with `max`, not `sum`).
"""

from __future__ import annotations

import asyncio

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy.ext.asyncio import AsyncEngine

from firebreak.store.counts import open_incident_counts

log = structlog.get_logger(__name__)

STORE_GAUGE_TIMEOUT_S = 2.0


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
        self.incidents_open = Gauge(
            "firebreak_incidents_open",
            "Open incidents by status, counted in the store at each scrape",
            ["status"],
            registry=self.registry,
        )


async def refresh_incidents_open(metrics: Metrics, engine: AsyncEngine) -> None:
    """Set `firebreak_incidents_open` from the store; call it just before rendering /metrics.
    An unreachable store drops the series (absent, not stale) and logs why."""
    try:
        async with asyncio.timeout(STORE_GAUGE_TIMEOUT_S), engine.connect() as conn:
            counts = await open_incident_counts(conn)
    except Exception as exc:
        metrics.incidents_open.clear()
        log.warning("cannot count open incidents for /metrics", error=type(exc).__name__)
        return
    for status, count in counts.items():
        metrics.incidents_open.labels(status.value).set(count)
