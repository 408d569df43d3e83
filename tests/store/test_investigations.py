"""Investigation runs are owned: a live owner's run is never adopted by another replica."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import Connection, update
from sqlalchemy.ext.asyncio import AsyncEngine

from firebreak.incidents import transitions
from firebreak.store import incidents, investigations
from firebreak.store.db import create_engine
from firebreak.store.migrate import upgrade
from firebreak.store.models import InvestigationRun


def declare_with_runs(conn: Connection, owners: dict[str, str]) -> int:
    """A declared incident with a running investigation per thread id in `owners`, owned by
    the replica named there."""
    incident_id = transitions.declare(conn, "disk full", "U1")
    for thread, owner in owners.items():
        investigations.create_run(conn, thread, incident_id, actor="U1", reason="t", owner=owner)
    return incident_id


async def adopt(
    engine: AsyncEngine, owner: str, stale_before: datetime | None
) -> list[investigations.Run]:
    """`owner` adopts the runs whose owners fell silent before `stale_before`, in a
    transaction of its own as a replica does."""
    async with engine.begin() as conn:
        return await conn.run_sync(investigations.adopt_runs, owner, stale_before=stale_before)


async def test_only_runs_of_silent_owners_are_adopted_once(store_url: str) -> None:
    await asyncio.to_thread(upgrade, store_url)
    engine = create_engine(store_url)
    try:
        async with engine.begin() as conn:
            owners = {thread: f"replica-{thread}" for thread in ("live", "dead", "done")}
            await conn.run_sync(declare_with_runs, owners)
            await conn.run_sync(investigations.set_status, "done", investigations.RunStatus.DONE)
            await conn.execute(
                update(InvestigationRun)
                .where(InvestigationRun.thread_id.in_(["dead", "done"]))
                .values(heartbeat_at=incidents.utcnow() - timedelta(minutes=5))
            )
        stale = incidents.utcnow() - timedelta(seconds=60)
        adopted = await adopt(engine, "replica-new", stale)
        again = await adopt(engine, "replica-other", stale)
        restart = await adopt(engine, "replica-solo", None)
    finally:
        await engine.dispose()

    assert [run.thread_id for run in adopted] == ["dead"]
    assert again == [], "a freshly adopted run has a live owner"
    assert sorted(run.thread_id for run in restart) == ["dead", "live"]  # single process


async def test_released_runs_are_adopted_at_once(store_url: str) -> None:
    await asyncio.to_thread(upgrade, store_url)
    engine = create_engine(store_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(declare_with_runs, {"t1": "replica-a"})
            await conn.run_sync(investigations.release, "replica-a")  # a clean shutdown
        stale = incidents.utcnow() - timedelta(seconds=60)
        adopted = await adopt(engine, "replica-b", stale)
    finally:
        await engine.dispose()
    assert [run.thread_id for run in adopted] == ["t1"]


async def test_a_decision_claims_the_run_named_and_a_newer_proposal_supersedes(
    store_url: str,
) -> None:
    waiting = investigations.RunStatus.AWAITING_APPROVAL
    await asyncio.to_thread(upgrade, store_url)
    engine = create_engine(store_url)
    try:
        async with engine.begin() as conn:
            incident_id = await conn.run_sync(declare_with_runs, {"older": "me", "newer": "me"})
            for thread in ("older", "newer"):
                await conn.run_sync(investigations.set_status, thread, waiting)
        async with engine.begin() as conn:
            superseded = await conn.run_sync(investigations.supersede_waiting, incident_id, "newer")
        decision = {"approve": True, "actor": "U1"}
        async with engine.begin() as conn:
            older = await conn.run_sync(
                investigations.claim_decision, "older", incident_id, decision, owner="me"
            )
            elsewhere = await conn.run_sync(
                investigations.claim_decision, "newer", incident_id + 1, decision, owner="me"
            )
            newer = await conn.run_sync(
                investigations.claim_decision, "newer", incident_id, decision, owner="me"
            )
            twice = await conn.run_sync(
                investigations.claim_decision, "newer", incident_id, decision, owner="me"
            )
            runs = [await conn.run_sync(investigations.run_of, t) for t in ("older", "newer")]
    finally:
        await engine.dispose()

    assert superseded == ["older"]
    assert (older, elsewhere, newer, twice) == (False, False, True, False)
    assert [(r.status, r.decision) for r in runs if r] == [
        (investigations.RunStatus.SUPERSEDED, None),
        (investigations.RunStatus.DECIDING, decision),
    ]
