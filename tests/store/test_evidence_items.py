"""Evidence items keep their reading structured, and analyses stored before they did still load
(the new fields read as None)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, update

from firebreak.incidents import transitions
from firebreak.store import incidents
from firebreak.store.db import create_engine
from firebreak.store.models import AnalysisRecord
from firebreak.store.schemas import (
    Analysis,
    EvidenceItem,
    LineReading,
    MetricSummary,
)
from firebreak.store.writer import Writer
from tests.support.analyses import make_analysis

AT = datetime(2026, 12, 1, 9, 55, tzinfo=UTC)
STRUCTURED = [
    EvidenceItem(
        ref="L1",
        kind="log",
        source="loki",
        text="2026-12-01T09:55:00+00:00 (x3) ERROR pool exhausted",
        line=LineReading(line="ERROR pool exhausted", timestamp=AT, count=3),
    ),
    EvidenceItem(
        ref="M1",
        kind="metric",
        source="prom",
        text="db_pool_in_use{pool=a} baseline=5 current=10 peak=10",
        metric=MetricSummary(
            query="db_pool_in_use", labels={"pool": "a"}, baseline=5, current=10, peak=10
        ),
    ),
]
# An analysis's evidence as versions before the structured readings wrote it.
LEGACY = [
    {"ref": "L1", "kind": "log", "source": "loki", "text": "ERROR pool exhausted"},
    {"ref": "M1", "kind": "metric", "source": "prom", "text": "db_pool_in_use{} baseline=5"},
]


def _analysis() -> Analysis:
    return make_analysis(evidence=STRUCTURED)


def _stored(conn: Connection) -> int:
    incident_id = transitions.declare(conn, "checkout down", "U1")
    incidents.save_analysis(conn, incident_id, _analysis(), {})
    return incident_id


async def _evidence(store_url: str, incident_id: int) -> list[EvidenceItem]:
    engine = create_engine(store_url)
    try:
        async with engine.connect() as conn:
            incident = await incidents.get_incident(conn, incident_id)
    finally:
        await engine.dispose()
    assert incident is not None and incident.analysis is not None
    return incident.analysis.evidence


async def test_structured_readings_are_stored_and_read_back(writer: Writer, store_url: str) -> None:
    incident_id = await writer.run(_stored)
    assert await _evidence(store_url, incident_id) == STRUCTURED


async def test_an_analysis_stored_before_structured_readings_still_loads(
    writer: Writer, store_url: str
) -> None:
    incident_id = await writer.run(_stored)

    def make_legacy(conn: Connection) -> None:
        body = _analysis().model_dump(mode="json", exclude={"run_id", "feedback"})
        body["evidence"] = LEGACY
        stored = update(AnalysisRecord).where(AnalysisRecord.incident_id == incident_id)
        conn.execute(stored.values(body=body))

    await writer.run(make_legacy)
    items = await _evidence(store_url, incident_id)
    assert [item.model_dump(include={"ref", "kind", "source", "text"}) for item in items] == LEGACY
    assert all(item.line is None and item.metric is None for item in items)
