"""Counts over the incidents table for gauges: cheap (one grouped query on an indexed column)
because `/metrics` runs it at every scrape."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from firebreak.store.models import Incident
from firebreak.store.schemas import IncidentStatus

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
