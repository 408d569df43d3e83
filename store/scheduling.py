"""The scheduler's SQL: the job store's rows in bulk, and the leader's advisory lock.

The job table is APScheduler's own (`SQLAlchemyJobStore.jobs_t`), passed in: its shape is the
library's, and writing its rows in bulk here (one DELETE per chunk, one INSERT for the lot) is
what lets a reconciliation of thousands of deadlines take one transaction instead of a job
store call per job. The advisory lock is PostgreSQL's, held on a connection of its own for as
long as the process leads (scheduler/election.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, delete, select, text

from firebreak.store.db import conflict_insert

__all__ = ["job_times", "ping", "replace_jobs", "try_advisory_lock", "unlock_advisory"]

CHUNK = 500  # ids per IN list


def replace_jobs(
    conn: Connection, jobs: Table, drop: Sequence[str], rows: Sequence[dict[str, Any]]
) -> None:
    """Delete the jobs whose ids are in `drop`, then insert `rows` (a job already there stays)."""
    for i in range(0, len(drop), CHUNK):
        conn.execute(delete(jobs).where(jobs.c.id.in_(drop[i : i + CHUNK])))
    if rows:
        conn.execute(
            conflict_insert(conn, jobs).on_conflict_do_nothing(index_elements=["id"]), list(rows)
        )


def job_times(conn: Connection, jobs: Table) -> dict[str, float | None]:
    """Every stored job's id and next run time (epoch seconds; None: paused)."""
    return {
        row.id: row.next_run_time for row in conn.execute(select(jobs.c.id, jobs.c.next_run_time))
    }


def try_advisory_lock(conn: Connection, key: int) -> bool:
    """PostgreSQL: take the session-level advisory lock `key` if it is free."""
    return bool(conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}))


def unlock_advisory(conn: Connection, key: int) -> None:
    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})


def ping(conn: Connection) -> None:
    """A round trip: raises when the connection is gone."""
    conn.execute(text("SELECT 1"))
