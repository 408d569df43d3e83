"""The scheduler's SQL: the leader's advisory lock.

The advisory lock is PostgreSQL's, held on a connection of its own for as long as the process
leads (scheduler/election.py). The job store's table is APScheduler's own and only APScheduler
writes it (scheduler/core.py uses its public API).
"""

from __future__ import annotations

from sqlalchemy import Connection, text

__all__ = ["ping", "try_advisory_lock", "unlock_advisory"]


def try_advisory_lock(conn: Connection, key: int) -> bool:
    """PostgreSQL: take the session-level advisory lock `key` if it is free."""
    return bool(conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}))


def unlock_advisory(conn: Connection, key: int) -> None:
    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})


def ping(conn: Connection) -> None:
    """A round trip: raises when the connection is gone."""
    conn.execute(text("SELECT 1"))
