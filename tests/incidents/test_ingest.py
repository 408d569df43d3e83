"""Grouping, de-duplication, idempotency and resolve/reopen rules of alert ingestion."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from sqlalchemy import func, select

from firebreak.incidents import transitions
from firebreak.incidents.ingest import IngestOutcome, ingest
from firebreak.store import incidents
from firebreak.store.db import create_engine, create_sync_engine
from firebreak.store.migrate import upgrade
from firebreak.store.models import Alert, Incident, TimelineEvent
from firebreak.store.payloads import AlertmanagerPayload
from firebreak.store.writer import Writer
from tests.support.payloads import alert, group


class Harness:
    def __init__(self, url: str, reopen_window_s: int = 300) -> None:
        self.engine = create_engine(url)
        self.reopen_window_s = reopen_window_s
        self.writer = Writer(create_sync_engine(url))

    async def send(self, payload: dict) -> IngestOutcome:
        notification = AlertmanagerPayload.model_validate(payload)
        return await self.writer.run(
            partial(
                ingest,
                payload=notification,
                now=incidents.utcnow(),
                reopen_window_s=self.reopen_window_s,
            )
        )

    async def count(self, model: type) -> int:
        async with self.engine.connect() as conn:
            return await conn.scalar(select(func.count()).select_from(model))

    async def event_types(self, incident_id: int) -> list[str]:
        async with self.engine.connect() as conn:
            events = await incidents.timeline(conn, incident_id)
        return [event.type for event in events or []]


@pytest.fixture
async def harness(store_url: str) -> AsyncIterator[Harness]:
    await asyncio.to_thread(upgrade, store_url)
    h = Harness(store_url)
    await h.writer.start()
    yield h
    await h.writer.stop()
    await h.engine.dispose()


async def test_one_incident_per_group_and_alerts_counted_once(harness: Harness) -> None:
    first = await harness.send(group("g1", [alert("a"), alert("b")]))
    second = await harness.send(group("g1", [alert("b"), alert("c")]))
    other = await harness.send(group("g2", [alert("a")]))

    assert first.opened and not second.opened and other.opened
    assert first.incident_id == second.incident_id != other.incident_id
    async with harness.engine.connect() as conn:
        incident = await incidents.get_incident(conn, first.incident_id)
    assert incident is not None
    assert incident.alert_count == 3
    assert sorted(a.fingerprint for a in incident.alerts) == ["a", "b", "c"]
    assert incident.title == "HighErrorRate: checkout is failing requests"
    assert (incident.severity, incident.service) == ("critical", "checkout")


async def test_redelivery_changes_nothing(harness: Harness) -> None:
    payload = group("g1", [alert("a"), alert("b")])
    first = await harness.send(payload)
    events_before = await harness.count(TimelineEvent)
    again = await harness.send(payload)

    assert again == IngestOutcome(incident_id=first.incident_id)
    assert await harness.count(Alert) == 2
    assert await harness.count(Incident) == 1
    assert await harness.count(TimelineEvent) == events_before


async def test_group_resolved_resolves_incident_once(harness: Harness) -> None:
    opened = await harness.send(group("g1", [alert("a")]))
    resolved_payload = group("g1", [alert("a", status="resolved")])
    resolved = await harness.send(resolved_payload)
    again = await harness.send(resolved_payload)

    assert resolved.resolved and not again.resolved
    async with harness.engine.connect() as conn:
        incident = await incidents.get_incident(conn, opened.incident_id)
    assert incident is not None and incident.status == "resolved"
    assert incident.resolved_at is not None
    types = await harness.event_types(opened.incident_id)
    assert types.count("RESOLVED") == 1
    assert types[0] == "INCIDENT_CREATED"


async def test_partial_resolve_keeps_incident_open(harness: Harness) -> None:
    opened = await harness.send(group("g1", [alert("a"), alert("b")]))
    await harness.send(group("g1", [alert("a", status="resolved"), alert("b")]))
    async with harness.engine.connect() as conn:
        incident = await incidents.get_incident(conn, opened.incident_id)
    assert incident is not None and incident.status == "triggered"
    assert {a.fingerprint: a.status for a in incident.alerts} == {"a": "resolved", "b": "firing"}


async def test_refiring_within_window_reopens(harness: Harness) -> None:
    opened = await harness.send(group("g1", [alert("a")]))
    await harness.send(group("g1", [alert("a", status="resolved")]))
    later = datetime(2026, 11, 22, 11, 0, tzinfo=UTC)
    refired = await harness.send(group("g1", [alert("a", starts_at=later)]))

    assert refired.reopened and refired.opened
    assert refired.incident_id == opened.incident_id
    assert "REOPENED" in await harness.event_types(opened.incident_id)
    assert await harness.count(Incident) == 1


async def test_refiring_after_window_opens_new_incident(store_url: str) -> None:
    await asyncio.to_thread(upgrade, store_url)
    h = Harness(store_url, reopen_window_s=0)
    await h.writer.start()
    try:
        first = await h.send(group("g1", [alert("a")]))
        await h.send(group("g1", [alert("a", status="resolved")]))
        await asyncio.sleep(0.01)
        later = datetime(2026, 11, 22, 11, 0, tzinfo=UTC)
        second = await h.send(group("g1", [alert("a", starts_at=later)]))
        assert second.opened and not second.reopened
        assert second.incident_id != first.incident_id
    finally:
        await h.writer.stop()
        await h.engine.dispose()


async def test_repeat_of_known_alert_after_resolve_opens_nothing(harness: Harness) -> None:
    """A late redelivery of the firing notification must not reopen a resolved incident."""
    firing = group("g1", [alert("a")])
    opened = await harness.send(firing)
    async with harness.engine.begin() as conn:
        await conn.run_sync(transitions.resolve, opened.incident_id, "U1")
    late = await harness.send(firing)
    assert not late.opened
    assert await harness.count(Incident) == 1


async def test_empty_alerts_is_a_noop(harness: Harness) -> None:
    outcome = await harness.send(group("g1", [], status="firing"))
    assert outcome == IngestOutcome()
    assert await harness.count(Incident) == 0


async def test_resolved_for_unknown_group_is_ignored(harness: Harness) -> None:
    outcome = await harness.send(group("never-seen", [alert("a", status="resolved")]))
    assert outcome.incident_id is None
    assert await harness.count(Incident) == 0 and await harness.count(Alert) == 0


async def test_truncated_alerts_recorded(harness: Harness) -> None:
    outcome = await harness.send(group("g1", [alert("a")], truncated=17))
    async with harness.engine.connect() as conn:
        incident = await incidents.get_incident(conn, outcome.incident_id)
    assert incident is not None and incident.truncated_alerts == 17


async def test_concurrent_groups_are_batched_and_all_stored(harness: Harness) -> None:
    payloads = [group(f"g{i % 7}", [alert(f"{i}-{j}") for j in range(10)]) for i in range(70)]
    outcomes = await asyncio.gather(*(harness.send(p) for p in payloads))
    assert all(o.incident_id is not None for o in outcomes)
    assert await harness.count(Incident) == 7
    assert await harness.count(Alert) == 700
    assert sum(o.opened for o in outcomes) == 7
    assert len({o.incident_id for o in outcomes if o.opened}) == 7


async def test_acknowledge_is_idempotent_and_recorded(harness: Harness) -> None:
    opened = await harness.send(group("g1", [alert("a")]))
    async with harness.engine.begin() as conn:
        first = await conn.run_sync(transitions.acknowledge, opened.incident_id, "U123")
    async with harness.engine.begin() as conn:
        second = await conn.run_sync(transitions.acknowledge, opened.incident_id, "U456")
    async with harness.engine.begin() as conn:
        missing = await conn.run_sync(transitions.acknowledge, 999_999, "U1")
    assert first.changed and first.status == "acknowledged"
    assert not second.changed and second.status == "acknowledged"
    assert missing.status is None
    async with harness.engine.connect() as conn:
        incident = await incidents.get_incident(conn, opened.incident_id)
        events = await incidents.timeline(conn, opened.incident_id)
    assert incident is not None and incident.acknowledged_by == "U123"
    acks = [e for e in events or [] if e.type == "ACKNOWLEDGED"]
    assert len(acks) == 1 and acks[0].actor == "U123"


async def test_timeline_timestamps_are_aware_and_ordered(harness: Harness) -> None:
    opened = await harness.send(group("g1", [alert("a")]))
    async with harness.engine.connect() as conn:
        events = await incidents.timeline(conn, opened.incident_id)
    assert events
    assert all(e.at.tzinfo is not None for e in events)
    assert [e.at for e in events] == sorted(e.at for e in events)
    assert events[0].at - datetime.now(UTC) < timedelta(minutes=1)
