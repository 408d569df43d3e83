"""Counts over the incidents table for gauges: cheap (one grouped query on an indexed column)
because `/metrics` runs it at every scrape."""

from __future__ import annotations

import asyncio

import structlog
from prometheus_client import Gauge
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from firebreak.store.models import Incident
from firebreak.store.schemas import IncidentStatus

log = structlog.get_logger(__name__)

OPEN_STATUSES = (IncidentStatus.TRIGGERED, IncidentStatus.ACKNOWLEDGED)


async def open_incident_counts(conn: AsyncConnection) -> dict[IncidentStatus, int]:
    """Incidents in each open status, zeros included."""
    rows = await conn.execute(
        select(Incident.status, func.count())
        .where(Incident.status.in_([s.value for s in OPEN_STATUSES]))
        .group_by(Incident.status)
    )
    found = {IncidentStatus(status): count for status, count in rows}
    return {status: found.get(status, 0) for status in OPEN_STATUSES}


STORE_GAUGE_TIMEOUT_S = 2.0


async def refresh_open_gauge(gauge: Gauge, engine: AsyncEngine) -> None:
    """Set `firebreak_incidents_open` from the store; call it just before rendering /metrics.
    An unreachable store drops the series (absent, not stale) and logs why."""
    try:
        async with asyncio.timeout(STORE_GAUGE_TIMEOUT_S), engine.connect() as conn:
            counts = await open_incident_counts(conn)
    except Exception as exc:
        gauge.clear()
        log.warning("cannot count open incidents for /metrics", error=type(exc).__name__)
        return
    for status, count in counts.items():
        gauge.labels(status.value).set(count)
