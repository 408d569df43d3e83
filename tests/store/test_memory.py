"""Incident memory on a seeded history (tests/support/history.py), on SQLite and PostgreSQL:
similar incidents ranked, the history handed to the reasoning agent, the statistics."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import Connection, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from firebreak.store import memory
from firebreak.store.db import create_engine
from firebreak.store.incidents import record_event
from firebreak.store.models import Incident, RemediationRun
from firebreak.store.schemas import EventType
from firebreak.store.writer import Writer
from tests.support.history import (
    ARCHETYPES,
    NOVEL,
    Probe,
    Seeded,
    make_probe,
    probes,
    seed_history,
)

HISTORY = 400
NOW = datetime.now(UTC)


def insert_open(conn: Connection, probe: Probe, *, with_cause: bool, at: datetime = NOW) -> int:
    """The incident being investigated: open, newest, its root cause known or not."""
    incident_id = conn.scalar(
        insert(Incident)
        .values(
            group_key=f"probe-{random.random()}",
            title=probe.title,
            status="triggered",
            severity="critical",
            service=probe.service,
            labels=probe.labels,
            created_at=at,
            updated_at=at,
            alert_count=1,
            truncated_alerts=0,
            escalation_level=0,
            root_cause=probe.root_cause if with_cause else None,
        )
        .returning(Incident.id)
    )
    assert incident_id is not None
    return incident_id


@pytest.fixture
async def seeded(writer: Writer, store_url: str) -> AsyncIterator[tuple[AsyncEngine, Seeded]]:
    history = await writer.run(partial(seed_history, count=HISTORY, end=NOW - timedelta(hours=1)))
    engine = create_engine(store_url)
    yield engine, history
    await engine.dispose()


async def test_similar_incidents_rank_the_same_failure_first(
    seeded: tuple[AsyncEngine, Seeded], writer: Writer
) -> None:
    engine, history = seeded
    asked = probes(12, seed=11)
    ids = [
        await writer.run(
            partial(insert_open, probe=p, with_cause=True, at=NOW + timedelta(minutes=n))
        )
        for n, p in enumerate(asked)
    ]
    kinds = {**history.archetype, **{i: p.archetype.name for i, p in zip(ids, asked, strict=True)}}
    services = {**history.service, **{i: p.service for i, p in zip(ids, asked, strict=True)}}
    async with engine.connect() as conn:
        for n, (probe, incident_id) in enumerate(zip(asked, ids, strict=True)):
            found = await memory.related(conn, incident_id)
            assert found is not None
            top = found["similar"][:3]
            assert len(top) == 3
            for item in top:  # the same failure of the same alert and service
                assert (kinds[item.id], services[item.id]) == (probe.archetype.name, probe.service)
            scores = [i.score for i in found["similar"]]
            assert scores == sorted(scores, reverse=True)
            assert not {i.id for i in found["similar"]} & set(ids[n:])  # only earlier ones


async def test_text_finds_the_same_cause_under_another_alert(
    seeded: tuple[AsyncEngine, Seeded], writer: Writer
) -> None:
    """No incident of this alert and service exists: the root cause's words find its likes."""
    engine, history = seeded
    oom = next(a for a in ARCHETYPES if a.name == "oom")
    probe = make_probe(oom, random.Random(3))
    moved = Probe(
        archetype=oom,
        service=probe.service,
        title=f"ContainerRestarts: {probe.service} restarting",
        labels={**probe.labels, "alertname": "ContainerRestarts"},
        root_cause=probe.root_cause,
    )
    incident_id = await writer.run(partial(insert_open, probe=moved, with_cause=True))
    async with engine.connect() as conn:
        found = await memory.related(conn, incident_id)
    assert found is not None and len(found["similar"]) >= 3
    assert all(history.archetype[i.id] == "oom" for i in found["similar"][:3])
    assert all(i.score < 1 for i in found["similar"])  # text matches, not the same alert


async def test_a_novel_failure_has_no_similar_incidents(
    seeded: tuple[AsyncEngine, Seeded], writer: Writer
) -> None:
    engine, _ = seeded
    novel = make_probe(NOVEL[0], random.Random(5), novel=True)
    incident_id = await writer.run(partial(insert_open, probe=novel, with_cause=True))
    async with engine.connect() as conn:
        found = await memory.related(conn, incident_id)
        history = await memory.history(conn, incident_id)
    assert found == {"similar": [], "concurrent": []}
    assert history == []


async def test_history_gives_three_resolved_incidents_with_how_they_ended(
    seeded: tuple[AsyncEngine, Seeded], writer: Writer
) -> None:
    engine, seeded_history = seeded
    probe = probes(1, seed=21)[0]
    incident_id = await writer.run(partial(insert_open, probe=probe, with_cause=False))
    async with engine.connect() as conn:
        first = await memory.history(conn, incident_id)
    assert [h.ref for h in first] == ["H1", "H2", "H3"]
    fixed, noted = first[0].incident_id, first[1].incident_id

    def how_they_ended(conn: Connection) -> None:
        for action, ok in (("scale-up", False), ("rollback", True)):
            conn.execute(
                insert(RemediationRun).values(
                    incident_id=fixed,
                    action=action,
                    definition={},
                    parameters={},
                    reason="",
                    approved_by="U0ALICE",
                    created_at=NOW,
                    updated_at=NOW,
                    phase="done",
                    step=3,
                    ok=ok,
                    output="",
                    verified=ok,
                )
            )
        record_event(conn, noted, EventType.NOTE, "U0BOB", "Restarted the pool by hand")
        data = {"kind": "question"}
        record_event(conn, noted, EventType.NOTE, "U0BOB", "Question: why?", data)

    await writer.run(how_they_ended)
    async with engine.connect() as conn:
        history = await memory.history(conn, incident_id)
    assert [h.incident_id for h in history] == [h.incident_id for h in first]
    assert history[0].resolution == "rollback (verified)"
    assert history[1].resolution == "Restarted the pool by hand"
    for item in history:
        assert item.resolved_at is not None and item.resolve_s is not None
        assert item.resolve_s > 0 and item.resolved_by
        assert seeded_history.archetype[item.incident_id] in {
            a.name for a in ARCHETYPES if a.alertname == probe.archetype.alertname
        }


async def test_concurrent_incidents_come_from_the_links(writer: Writer, store_url: str) -> None:
    probe = probes(1)[0]
    ids = [await writer.run(partial(insert_open, probe=probe, with_cause=False)) for _ in "abc"]
    await writer.run(partial(memory.link, incident_id=ids[2], others=ids[:2], now=NOW))
    engine = create_engine(store_url)
    try:
        async with engine.connect() as conn:
            newest = await memory.related(conn, ids[2])
            oldest = await memory.related(conn, ids[0])
            assert await memory.related(conn, 10**9) is None
    finally:
        await engine.dispose()
    assert newest is not None and oldest is not None
    assert [i.id for i in newest["concurrent"]] == ids[:2]
    assert [i.id for i in oldest["concurrent"]] == [ids[2]]


def _timed(conn: Connection, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        conn.execute(
            insert(Incident).values(
                group_key=None,
                title="t",
                status="resolved" if row.get("resolved") else "triggered",
                severity="critical",
                labels={},
                updated_at=row["created"],
                alert_count=0,
                truncated_alerts=0,
                escalation_level=0,
                service=row["service"],
                created_at=row["created"],
                acknowledged_at=row.get("ack"),
                resolved_at=row.get("resolved"),
            )
        )


async def test_stats_median_and_p90_since(writer: Writer, store_url: str) -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    minute = timedelta(minutes=1)
    rows = [
        {
            "service": "checkout",
            "created": t0,
            "ack": t0 + 1 * minute,
            "resolved": t0 + 10 * minute,
        },
        {
            "service": "checkout",
            "created": t0,
            "ack": t0 + 3 * minute,
            "resolved": t0 + 30 * minute,
        },
        {"service": "payments", "created": t0, "ack": t0 + 5 * minute},
        {"service": "payments", "created": t0},
        {"service": "old", "created": t0 - timedelta(days=30), "ack": t0},
    ]
    await writer.run(partial(_timed, rows=rows))
    engine = create_engine(store_url)
    try:
        async with engine.connect() as conn:
            found = await memory.stats(conn, t0 - timedelta(days=1))
            everything = await memory.stats(conn, None)
    finally:
        await engine.dispose()
    assert found["incidents"] == 4 and everything["incidents"] == 5
    assert found["mtta_s"] == {"median": 180.0, "p90": 276.0}  # 60, 180, 300
    assert found["mttr_s"] == {"median": 1200.0, "p90": 1680.0}  # 600, 1800
    assert found["by_service"]["checkout"]["mtta_s"] == {"median": 120.0, "p90": 168.0}
    assert found["by_service"]["payments"] == {
        "incidents": 2,
        "mtta_s": {"median": 300.0, "p90": 300.0},
        "mttr_s": {"median": None, "p90": None},
    }
    assert "old" not in found["by_service"] and "old" in everything["by_service"]
