"""Interval jobs on the elected scheduler only, and the retention purge they run."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, select

from firebreak.components import schedule_retention
from firebreak.config import Config
from firebreak.scheduler.core import JobScheduler
from firebreak.store.models import Incident
from firebreak.store.writer import Writer
from tests.store.test_retention import make_incident
from tests.support.app import run_app

NOW = datetime.now(UTC)


async def until(probe, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not probe():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.02)


async def test_an_interval_job_runs_on_the_elected_scheduler_only(
    writer: Writer, store_url: str
) -> None:
    runs = {"leader": 0, "follower": 0}

    def counting(who: str):
        async def work() -> None:
            runs[who] += 1
            if runs[who] == 1:
                raise RuntimeError("a failed run is logged; the next one comes as planned")

        return work

    leader = JobScheduler(store_url, sweep_interval_s=60)
    follower = JobScheduler(store_url, sweep_interval_s=60)
    for name, scheduler in (("leader", leader), ("follower", follower)):
        scheduler.every(name, 0.1, counting(name), first_at=datetime.now(UTC))
    await leader.start()
    await follower.start()
    try:
        assert leader.is_leader and not follower.is_leader
        await until(lambda: runs["leader"] >= 3)
        assert runs["follower"] == 0  # its job fired as often, and did nothing
    finally:
        await follower.stop()
        await leader.stop()


async def test_retention_purges_old_resolved_incidents_on_schedule(
    writer: Writer, store_url: str
) -> None:
    def seed(conn: Connection) -> dict[str, int]:
        return {
            "old": make_incident(conn, "old", resolved_at=NOW - timedelta(days=40)),
            "recent": make_incident(conn, "recent", resolved_at=NOW - timedelta(days=2)),
            "open": make_incident(conn, "open", resolved_at=None),
        }

    seeded = await writer.run(seed)

    def left(conn: Connection) -> set[int]:
        return set(conn.scalars(select(Incident.id)))

    scheduler = JobScheduler(store_url, sweep_interval_s=60)
    schedule_retention(scheduler, writer, 30, first_after_s=0)
    await scheduler.start()
    try:
        deadline = asyncio.get_running_loop().time() + 10
        remaining: set[int] = await writer.run(left)
        while seeded["old"] in remaining:
            assert asyncio.get_running_loop().time() < deadline, "never purged"
            await asyncio.sleep(0.05)
            remaining = await writer.run(left)
        assert {seeded["recent"], seeded["open"]} <= remaining
    finally:
        await scheduler.stop()


async def test_serve_schedules_the_purge_only_with_retention_days(store_url: str) -> None:
    for days, scheduled in ((None, False), (30, True)):
        config = Config(store={"url": store_url, "retention_days": days})
        async with run_app(config) as app:
            job = app.runtime.scheduler.scheduler.get_job("every:retention")
            assert (job is not None) is scheduled
            if job is not None:
                assert job.trigger.interval == timedelta(hours=1)
                assert job.next_run_time < datetime.now(UTC) + timedelta(minutes=2)
