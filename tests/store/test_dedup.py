"""The shared de-duplication table on the store writer's blocking connection, on both
databases: one claimer per (kind, key), whatever the replica; keys pruned by age only when no
incident holds them; and the rows of the table it replaced carried over by the migration."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from functools import partial

from sqlalchemy import Connection, create_engine, insert, select, text

from firebreak.incidents import transitions
from firebreak.store import dedup
from firebreak.store.db import sync_url
from firebreak.store.migrate import upgrade
from firebreak.store.models import DedupKey, InvestigationRun
from firebreak.store.writer import Writer

AT = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


async def test_an_event_is_first_delivered_once(writer: Writer) -> None:
    first = partial(dedup.claim, kind=dedup.SLACK, key="event:Ev1")
    answers = await asyncio.gather(writer.run(first), writer.run(first))
    later = await writer.run(first)
    other = await writer.run(partial(dedup.claim, kind=dedup.SLACK, key="event:Ev2"))
    assert answers == [True, False] and later is False and other is True


async def test_a_key_is_claimed_once_per_kind(writer: Writer) -> None:
    assert await writer.run(partial(dedup.claim, kind=dedup.HANDOFF, key="event:Ev1"))
    assert await writer.run(partial(dedup.claim, kind=dedup.SLACK, key="event:Ev1"))
    assert not await writer.run(partial(dedup.claim, kind=dedup.HANDOFF, key="event:Ev1"))

    def claimed(conn: Connection) -> set[str]:
        return dedup.claimed(conn, dedup.HANDOFF, ["event:Ev1", "event:Ev2"])

    assert await writer.run(claimed) == {"event:Ev1"}


async def test_pruning_by_age_spares_keys_kept_with_their_incident(writer: Writer) -> None:
    def claim_some(conn: Connection) -> None:
        incident_id = transitions.declare(conn, "Checkout down", "U1")
        dedup.claim(conn, dedup.SLACK, "event:Ev1")
        dedup.claim(conn, dedup.HANDOFF, "sre:1700000000")
        dedup.claim(conn, dedup.TOOL_CALL, "run-1:call-1", incident_id=incident_id)

    def kept(conn: Connection) -> set[tuple[str, str]]:
        return {(row.kind, row.key) for row in conn.execute(select(DedupKey.kind, DedupKey.key))}

    await writer.run(claim_some)
    await asyncio.sleep(0.01)
    await writer.run(partial(dedup.prune, older_than=timedelta(seconds=60)))
    assert len(await writer.run(kept)) == 3, "all younger than a minute"
    await writer.run(partial(dedup.prune, older_than=timedelta(0)))
    assert await writer.run(kept) == {(dedup.TOOL_CALL, "run-1:call-1")}  # held by its incident


async def test_the_migration_carries_the_slack_table_over(store_url: str) -> None:
    await asyncio.to_thread(upgrade, store_url, "0009")
    engine = create_engine(sync_url(store_url))
    try:
        with engine.begin() as conn:
            incident_id = transitions.declare(conn, "Checkout down", "U1")
            conn.execute(
                insert(InvestigationRun).values(
                    thread_id="run-1",
                    incident_id=incident_id,
                    status="done",
                    actor="firebreak",
                    reason="opened",
                    started_at=AT,
                )
            )
            conn.execute(
                text("INSERT INTO slack_events_seen (key, seen_at) VALUES (:key, :at)"),
                [
                    {"key": key, "at": AT}
                    for key in ("event:Ev1", "handoff:sre:1700000000", "tool_call:run-1:call-1")
                ],
            )
        await asyncio.to_thread(upgrade, store_url)
        with engine.connect() as conn:
            rows = conn.execute(select(DedupKey.kind, DedupKey.key, DedupKey.incident_id))
            moved = {(row.kind, row.key, row.incident_id) for row in rows}
    finally:
        engine.dispose()
    assert moved == {
        ("slack", "event:Ev1", None),
        ("handoff", "sre:1700000000", None),
        ("tool_call", "run-1:call-1", incident_id),
    }
