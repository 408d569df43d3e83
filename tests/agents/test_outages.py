"""Runs held through a store outage: taken back once the writer commits again, counted, on the
timeline once, failed for good past the bound; what was left to record is recorded as it was.

Real store and writer; `resume` is the service's hook (agents/runner.py drives the graph from
it), recorded here."""

from __future__ import annotations

import asyncio
import sqlite3
from functools import partial

from sqlalchemy import Connection, select
from sqlalchemy.exc import OperationalError

from firebreak.agents.outages import StoreOutages
from firebreak.incidents import transitions
from firebreak.store import investigations
from firebreak.store.investigations import Run, RunStatus
from firebreak.store.models import InvestigationRun, TimelineEvent
from firebreak.store.writer import Writer
from tests.support.waiting import eventually

DISK_FULL = OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full"))


def _incident_with_run(conn: Connection, thread_id: str) -> int:
    incident_id = transitions.declare(conn, "checkout down", "U1")
    investigations.create_run(
        conn, thread_id, incident_id, actor="U1", reason="opened", owner="replica-a"
    )
    return incident_id


def _state(conn: Connection, thread_id: str) -> tuple[str, int, list[str]]:
    run = conn.execute(select(InvestigationRun).where(InvestigationRun.thread_id == thread_id))
    row = run.one()
    types = conn.scalars(
        select(TimelineEvent.type)
        .where(TimelineEvent.incident_id == row.incident_id)
        .order_by(TimelineEvent.id)
    )
    return row.status, row.store_retries, list(types)


async def test_held_runs_resume_counted_once_on_the_timeline_then_fail_past_the_bound(
    writer: Writer,
) -> None:
    resumed: list[Run] = []
    outages = StoreOutages(writer, resumed.append, owner="replica-a", retries=2, retry_after_s=0.05)
    incident_id = await writer.run(partial(_incident_with_run, thread_id="t1"))
    for attempt in (1, 2):
        outages.hold(incident_id, "t1", DISK_FULL)
        assert outages.holds(incident_id)
        await eventually(lambda n=attempt: _resumed(resumed, n), within=5)
        assert not outages.holding
    outages.hold(incident_id, "t1", DISK_FULL)
    await eventually(lambda: _let_go(outages), within=5)
    await outages.close()

    assert [r.thread_id for r in resumed] == ["t1", "t1"]
    assert resumed[0] == Run("t1", incident_id, RunStatus.RUNNING, None)
    status, retries, types = await writer.run(partial(_state, thread_id="t1"))
    assert (status, retries) == ("failed", 3)
    assert types.count("AI_ANALYSIS_RETRIED") == 1
    assert types[-1] == "AI_ANALYSIS_FAILED"


async def test_nothing_is_taken_while_the_writer_still_fails(writer: Writer) -> None:
    resumed: list[Run] = []
    outages = StoreOutages(writer, resumed.append, owner="replica-a", retry_after_s=0.05)
    incident_id = await writer.run(partial(_incident_with_run, thread_id="t1"))
    writer.health.failed(DISK_FULL)
    outages.hold(incident_id, "t1", DISK_FULL)
    await asyncio.sleep(1.2)
    assert resumed == [] and outages.holding
    writer.health.recovered()
    await eventually(lambda: _resumed(resumed, 1), within=5)
    await outages.close()
    assert (await writer.run(partial(_state, thread_id="t1")))[1] == 1


async def test_what_was_left_to_record_is_recorded_without_resuming(writer: Writer) -> None:
    resumed: list[Run] = []
    outages = StoreOutages(writer, resumed.append, owner="replica-a", retry_after_s=0.05)
    incident_id = await writer.run(partial(_incident_with_run, thread_id="t1"))
    settle = partial(
        investigations.settle,
        thread_id="t1",
        status=RunStatus.FAILED,
        incident_id=incident_id,
        failure=("firebreak", "Investigation failed: ValueError: bad"),
    )
    outages.hold(incident_id, "t1", DISK_FULL, record=settle)
    create = partial(
        investigations.create_run,
        thread_id="t2",
        incident_id=incident_id,
        actor="U1",
        reason="opened",
        owner="replica-a",
    )
    outages.hold(incident_id, "t2", DISK_FULL, record=create, then_resume=True)
    await eventually(lambda: _let_go(outages), within=5)
    await outages.close()

    assert resumed == [Run("t2", incident_id, RunStatus.RUNNING, None)]
    status, retries, types = await writer.run(partial(_state, thread_id="t1"))
    assert (status, retries) == ("failed", 0)
    assert types.count("AI_ANALYSIS_FAILED") == 1 and "AI_ANALYSIS_RETRIED" not in types


async def _resumed(resumed: list[Run], count: int) -> bool:
    return len(resumed) >= count


async def _let_go(outages: StoreOutages) -> bool:
    return not outages.holding
