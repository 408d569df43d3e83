"""Persistent jobs through APScheduler's public API: written, reconciled, fired once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection

from firebreak.scheduler.core import PERSISTENT, Due, JobKind, JobScheduler, parse_job_id
from firebreak.store.writer import Writer


def test_a_job_id_names_kind_key_and_token() -> None:
    due = Due("esc", 12, 3, datetime.now(UTC))
    assert parse_job_id(due.job_id) == ("esc", 12, 3)
    assert parse_job_id("every:retention") is None
    assert parse_job_id("firebreak-sweep") is None


async def test_reconcile_writes_missing_jobs_removes_stale_ones_and_each_fires_once(
    writer: Writer, store_url: str
) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=0.3)
    later = datetime.now(UTC) + timedelta(hours=1)
    pending = [Due("test", 1, 0, soon), Due("test", 2, 0, later)]
    fired: list[tuple[int, int]] = []

    async def fire(key: int, token: int) -> None:
        fired.append((key, token))

    def rows(_conn: Connection) -> list[Due]:
        return list(pending)

    scheduler = JobScheduler(store_url, sweep_interval_s=3600)
    scheduler.register(JobKind("test", fire, rows))
    await scheduler.start()
    try:
        assert scheduler.last_reconcile is not None and scheduler.last_reconcile.written == 2
        ids = {job.id for job in scheduler.scheduler.get_jobs(jobstore=PERSISTENT)}
        assert ids == {"test:1:0", "test:2:0"}

        pending[1] = Due("test", 2, 1, later)  # the row moved on: its old job is stale
        report = await scheduler.reconcile()
        assert (report.written, report.deleted) == (1, 1)
        ids = {job.id for job in scheduler.scheduler.get_jobs(jobstore=PERSISTENT)}
        assert "test:2:1" in ids and "test:2:0" not in ids

        deadline = asyncio.get_running_loop().time() + 10
        while not fired:
            assert asyncio.get_running_loop().time() < deadline, "never fired"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        assert fired == [(1, 0)]
    finally:
        await scheduler.stop()
