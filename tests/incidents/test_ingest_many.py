"""`ingest_many` (the storm path) gives exactly what `ingest` gives one notification at a time.

A seeded sequence of notifications (new groups, more alerts, repeats, replays of older firings,
partial and whole resolves, flapping, correlated groups that merge) is applied twice to a fresh
store: once notification by notification, once in batches of random sizes. The outcomes and
every row ingestion writes (incidents, groups, alerts, links, the timeline) must be equal.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, event, select
from sqlalchemy.engine import make_url

from firebreak.incidents.config import CorrelationConfig
from firebreak.incidents.ingest import IngestOutcome, ingest, ingest_many
from firebreak.store.db import create_sync_engine
from firebreak.store.incidents import utcnow
from firebreak.store.migrate import upgrade
from firebreak.store.models import Alert, Incident, IncidentGroup, IncidentLink, TimelineEvent
from firebreak.store.payloads import AlertmanagerPayload
from tests.support.payloads import alert, group

START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
MERGE = CorrelationConfig(labels=["service"], window_s=300, merge=True)


def notifications(seed: int, count: int = 80) -> list[AlertmanagerPayload]:
    rng = random.Random(seed)
    payloads = []
    for _ in range(count):
        g = rng.randrange(6)
        alerts = []
        for k in rng.sample(range(16), rng.randint(1, 4)):
            status = "firing" if rng.random() < 0.65 else "resolved"
            starts = START + timedelta(minutes=rng.choice([0, 0, 5, 10]))  # replays: older
            alerts.append(alert(f"f{g}-{k}", status=status, service=f"s{g % 3}", starts_at=starts))
        if rng.random() < 0.15:  # the whole group resolves
            alerts = [dict(a, status="resolved") for a in alerts]
        payload = group(f"g{g}", alerts, truncated=rng.choice([0, 0, 3]))
        payloads.append(AlertmanagerPayload.model_validate(payload))
    return payloads


def batches(seed: int, payloads: list[AlertmanagerPayload]) -> list[list[AlertmanagerPayload]]:
    rng = random.Random(seed)
    split, start = [], 0
    while start < len(payloads):
        size = rng.randint(1, 15)
        split.append(payloads[start : start + size])
        start += size
    return split


def snapshot(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row ingestion writes, without the wall-clock columns."""
    return {
        "incidents": list(
            conn.execute(
                select(
                    Incident.id,
                    Incident.group_key,
                    Incident.status,
                    Incident.alert_count,
                    Incident.truncated_alerts,
                    Incident.resolved_by,
                    Incident.resolved_at,
                ).order_by(Incident.id)
            )
        ),
        "groups": list(
            conn.execute(
                select(
                    IncidentGroup.incident_id, IncidentGroup.group_key, IncidentGroup.status
                ).order_by(IncidentGroup.incident_id, IncidentGroup.group_key)
            )
        ),
        "alerts": list(
            conn.execute(
                select(
                    Alert.id,
                    Alert.incident_id,
                    Alert.fingerprint,
                    Alert.status,
                    Alert.starts_at,
                    Alert.ends_at,
                ).order_by(Alert.id)
            )
        ),
        "links": list(
            conn.execute(
                select(IncidentLink.incident_id, IncidentLink.related_id).order_by(
                    IncidentLink.incident_id, IncidentLink.related_id
                )
            )
        ),
        "events": list(
            conn.execute(
                select(
                    TimelineEvent.id,
                    TimelineEvent.incident_id,
                    TimelineEvent.type,
                    TimelineEvent.message,
                    TimelineEvent.data,
                ).order_by(TimelineEvent.id)
            )
        ),
    }


def fresh(url: str) -> None:
    """An empty, migrated store at `url`."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        Path(parsed.database or "").unlink(missing_ok=True)
    else:
        admin = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
    upgrade(url)


def comparable(outcome: IngestOutcome) -> IngestOutcome:
    """`resolved_after_s` counts from the incident's wall-clock creation: only its presence."""
    seconds = outcome.resolved_after_s
    return replace(outcome, resolved_after_s=None if seconds is None else 0.0)


def run(
    url: str,
    split: list[list[AlertmanagerPayload]],
    base: datetime,
    *,
    one_by_one: bool,
    **rules: Any,
):
    fresh(url)
    engine = create_sync_engine(url)
    outcomes: list[IngestOutcome] = []
    try:
        for index, batch in enumerate(split):
            now = base + timedelta(seconds=40 * index)  # the reopen window passes now and then
            with engine.begin() as conn:
                if one_by_one:
                    outcomes += [ingest(conn, p, now=now, **rules) for p in batch]
                else:
                    outcomes += ingest_many(conn, batch, now=now, **rules)
        with engine.connect() as conn:
            return [comparable(o) for o in outcomes], snapshot(conn)
    finally:
        engine.dispose()


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("correlation", [None, MERGE], ids=["plain", "merge"])
async def test_batches_write_what_one_by_one_writes(
    store_url: str, seed: int, correlation: CorrelationConfig | None
) -> None:
    split = batches(seed, notifications(seed))
    rules = {"reopen_window_s": 100, "correlation": correlation}
    base = utcnow()  # correlation windows count from the incidents' wall-clock creation
    expected = await asyncio.to_thread(run, store_url, split, base, one_by_one=True, **rules)
    batched = await asyncio.to_thread(run, store_url, split, base, one_by_one=False, **rules)
    assert batched[0] == expected[0]
    for table, rows in expected[1].items():
        assert batched[1][table] == rows, table
    opened = sum(o.opened for o in expected[0])
    assert opened > 1 and any(o.resolved for o in expected[0])  # the sequence covers both
    assert sum(o.alerts_written for o in expected[0]) > 50


async def test_a_storm_batch_is_read_and_written_set_wise(store_url: str) -> None:
    """Forty notifications for five open groups: five statements, not five each."""
    await asyncio.to_thread(fresh, store_url)
    engine = create_sync_engine(store_url)
    statements: list[str] = []
    try:
        with engine.begin() as conn:
            opening = [group(f"g{g}", [alert(f"open-{g}")]) for g in range(5)]
            ingest_many(
                conn,
                [AlertmanagerPayload.model_validate(p) for p in opening],
                now=utcnow(),
                reopen_window_s=300,
            )
        storm = [
            AlertmanagerPayload.model_validate(
                group(f"g{i % 5}", [alert(f"storm-{i}-{j}") for j in range(10)])
            )
            for i in range(40)
        ]
        with engine.begin() as conn:
            event.listen(conn, "before_cursor_execute", lambda *a: statements.append(a[2]))
            outcomes = ingest_many(conn, storm, now=utcnow(), reopen_window_s=300)
        with engine.connect() as conn:
            stored = conn.scalar(select(Incident.alert_count).where(Incident.group_key == "g0"))
    finally:
        engine.dispose()
    assert [o.alerts_written for o in outcomes] == [10] * 40
    assert not any(o.opened for o in outcomes)
    assert stored == 1 + 8 * 10
    # 2 reads; insert alerts; count them; timeline (on PostgreSQL both inserts are COPY, which
    # psycopg runs past SQLAlchemy's statement events)
    assert len(statements) == (3 if store_url.startswith("postgresql") else 5), statements
