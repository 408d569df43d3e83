"""Telling "the store is away" from "this work is wrong", and how writes are faring.

A write fails either because the database could not take it (the server restarted or is down,
the connection was cut, the disk is full, the pool had no connection to give) or because of
the work itself (a unique-index race, a bug). Only the first kind says anything about the
store: it makes `/readyz` not ready, and an investigation cut short by it is tried again once
the store is back (agents/runner.py). `is_outage` draws that line from the exception (and
what it was raised from), whichever driver raised it: SQLAlchemy's wrappers, psycopg (the
writer, the LangGraph PostgreSQL saver and its pool), asyncpg (reads), sqlite3 (also through
aiosqlite, the LangGraph SQLite saver).

`WriteHealth` is the writer's record of its commits; `probe` is the write it commits to find
out that the store takes writes again.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from sqlalchemy import Connection, update
from sqlalchemy import exc as sa_exc

from firebreak.store.db import conflict_insert
from firebreak.store.models import StoreProbe

# sqlite3 raises OperationalError for syntax errors and missing tables too: these messages
# are the ones about the database file itself.
SQLITE_OUTAGES = (
    "database or disk is full",
    "disk i/o error",
    "database is locked",
    "unable to open database file",
    "attempt to write a readonly database",
    "no space left",
)
# asyncpg's own classes (raised by SQLAlchemy's asyncpg adapter before it wraps them), by
# name so that reading this module needs no asyncpg import.
ASYNCPG_OUTAGES = frozenset(
    {
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "PostgresConnectionError",
        "CannotConnectNowError",
        "AdminShutdownError",
        "CrashShutdownError",
        "DiskFullError",
        "InsufficientResourcesError",
        "TooManyConnectionsError",
        "InternalClientError",
    }
)
PROBE_NAME = "writer"
PROBE_BYTES = 64 * 1024


def is_outage(exc: BaseException) -> bool:
    """True when `exc`, or an exception it was raised from, says the store could not take
    the work at all (connection, server, disk), as opposed to refusing this work.

    asyncpg lets the socket's own error out when it cannot connect (`ConnectionRefusedError`,
    unwrapped by SQLAlchemy), so a connection error counts when it is `exc` itself: callers
    ask about store work. Deeper in a chain only the drivers' errors count, so that, say, an
    HTTP client's error raised from a refused socket is not taken for the store."""
    if isinstance(exc, ConnectionError):
        return True
    return any(_outage(cause) for cause in _chain(exc))


def _outage(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return not isinstance(exc.orig, sqlite3.Error) or _sqlite_outage(exc.orig)
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return True  # includes psycopg_pool's PoolTimeout and PoolClosed
    if isinstance(exc, sqlite3.Error):
        return _sqlite_outage(exc)
    return type(exc).__name__ in ASYNCPG_OUTAGES


def _sqlite_outage(exc: BaseException) -> bool:
    message = str(exc).lower()
    return any(text in message for text in SQLITE_OUTAGES)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, what it was raised from or during, and the members of exception groups."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        if isinstance(current, sa_exc.DBAPIError) and isinstance(current.orig, BaseException):
            pending.append(current.orig)
        pending.extend(c for c in (current.__cause__, current.__context__) if c is not None)


def describe(exc: BaseException) -> str:
    """`Class: first line` of the driver's own error when there is one (SQLAlchemy's text
    starts with the driver's class in brackets and ends with SQL and a link)."""
    inner = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
    lines = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {lines[0] if lines else ''}".strip().rstrip(":")


@dataclass
class WriteHealth:
    """Whether the writer's commits are failing for the store's sake, since when, and why.

    A failure is a commit that failed with `is_outage`; it ends only with a commit known to
    have written (the writer's `probe`): on SQLite a transaction that changed nothing commits
    even on a full disk, so an ordinary success is no proof."""

    failing_since: float | None = None  # time.monotonic()
    last_failure_at: float | None = None
    last_error: str | None = None

    @property
    def failing(self) -> bool:
        return self.failing_since is not None

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self.failing_since is None:
            self.failing_since = now
        self.last_failure_at = now
        self.last_error = describe(exc)

    def recovered(self) -> None:
        self.failing_since = self.last_failure_at = None
        self.last_error = None

    def readiness(self) -> str:
        """ "ok", or why writes are failing, in `/readyz`'s words."""
        if self.failing_since is None or self.last_failure_at is None:
            return "ok"
        now = time.monotonic()
        return (
            f"writes failing: {self.last_error} (last failure {now - self.last_failure_at:.0f} s"
            f" ago, failing for {now - self.failing_since:.0f} s)"
        )


def probe(conn: Connection) -> None:
    """A real write that needs room: one row rewritten with `PROBE_BYTES` of fresh bytes. A
    tiny update can fit in pages the database already has (and on SQLite in WAL frames already
    written), so it may commit on a full disk where an alert batch does not."""
    values = {"at": datetime.now(UTC), "room": os.urandom(PROBE_BYTES)}
    updated = conn.execute(update(StoreProbe).where(StoreProbe.name == PROBE_NAME).values(values))
    if updated.rowcount == 0:
        conn.execute(
            conflict_insert(conn, StoreProbe)
            .values(name=PROBE_NAME, **values)
            .on_conflict_do_update(index_elements=["name"], set_=values)
        )
