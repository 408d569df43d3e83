"""Retention purges old resolved incidents and every row that references them, on SQLite and
PostgreSQL, in batches; open incidents and recent ones stay whole."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import structlog
from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    DateTime,
    Integer,
    String,
    Table,
    Text,
    TypeDecorator,
    create_engine,
    func,
    insert,
    select,
    update,
)

from firebreak.incidents import transitions
from firebreak.store.db import sync_url
from firebreak.store.models import Base, Incident
from firebreak.store.retention import purge_resolved, purge_resolved_async
from firebreak.store.writer import Writer

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=40)
CUTOFF = NOW - timedelta(days=30)


def referencing_tables() -> list[Table]:
    """Every table with a foreign key to incidents, directly or through another table."""
    found: list[Table] = []
    frontier = [Incident.__table__]
    while frontier:
        parent = frontier.pop()
        for table in Base.metadata.sorted_tables:
            if table not in found and any(fk.column.table is parent for fk in table.foreign_keys):
                found.append(table)
                frontier.append(table)
    return found


def filler(table: Table, incident_id: int, parents: dict[Table, Any]) -> dict[str, Any]:
    """A row for `table` that references `incident_id` (or its row in the parent table),
    every other required column filled by its type; strings are unique per incident."""
    row: dict[str, Any] = {}
    for column in table.columns:
        fks = list(column.foreign_keys)
        if fks:
            target = fks[0].column
            row[column.name] = (
                incident_id if target.table is Incident.__table__ else parents[target.table]
            )
        elif (
            column.primary_key
            and column.autoincrement in (True, "auto")
            and not isinstance(_plain(column.type), String)
        ):
            continue
        elif column.nullable:
            row[column.name] = None
        else:
            row[column.name] = _value(column.type, f"{table.name}-{column.name}-{incident_id}")
    return row


def _plain(kind: Any) -> Any:
    """The type a column's TypeDecorator (store/text.py's NUL-free text) decorates."""
    return kind.impl_instance if isinstance(kind, TypeDecorator) else kind


def _value(kind: Any, unique: str) -> Any:
    kind = _plain(kind)
    if isinstance(kind, String | Text):
        limit = getattr(kind, "length", None) or 200
        return unique[-limit:]
    if isinstance(kind, Boolean):
        return False
    if isinstance(kind, DateTime) or "DateTime" in type(kind).__name__:
        return NOW
    if isinstance(kind, Integer) or "Integer" in type(kind).__name__:
        return 0
    if isinstance(kind, JSON) or "JSON" in type(kind).__name__.upper():
        return {}
    return 0


def make_incident(conn: Connection, title: str, *, resolved_at: datetime | None) -> int:
    """An incident with one row in every referencing table."""
    incident_id = transitions.declare(conn, title, "U0TEST")
    if resolved_at is not None:
        transitions.resolve(conn, incident_id, "U0TEST")
        conn.execute(
            update(Incident).where(Incident.id == incident_id).values(resolved_at=resolved_at)
        )
    parents: dict[Table, Any] = {}
    for table in referencing_tables():
        row = filler(table, incident_id, parents)
        result = conn.execute(insert(table).values(**row).returning(*table.primary_key.columns))
        parents[table] = result.scalar_one()
    return incident_id


def counts(conn: Connection, incident_ids: list[int]) -> dict[str, int]:
    """Rows left for these incidents in every table that references incidents directly."""
    out: dict[str, int] = {}
    for table in [Incident.__table__, *referencing_tables()]:
        column = next(
            (
                c
                for c in table.columns
                if any(fk.column.table is Incident.__table__ for fk in c.foreign_keys)
            ),
            table.c.id if table is Incident.__table__ else None,
        )
        if column is not None:
            out[table.name] = conn.scalar(
                select(func.count()).select_from(table).where(column.in_(incident_ids))
            )
    return out


async def test_old_resolved_incidents_go_with_every_row_about_them(writer: Writer) -> None:
    tables = {t.name for t in referencing_tables()}
    assert {"alerts", "timeline_events", "analyses", "slack_outbox"} <= tables

    def seed(conn: Connection) -> dict[str, list[int]]:
        return {
            "old": [make_incident(conn, f"old {i}", resolved_at=OLD) for i in range(5)],
            "recent": [make_incident(conn, "recent", resolved_at=NOW - timedelta(days=1))],
            "open": [make_incident(conn, "open", resolved_at=None)],
        }

    seeded = await writer.run(seed)
    await writer.run(  # an incident opened long ago and still open is never purged
        lambda conn: conn.execute(
            update(Incident).where(Incident.id.in_(seeded["open"])).values(created_at=OLD)
        )
    )
    with structlog.testing.capture_logs() as logs:
        purged = await purge_resolved_async(writer, CUTOFF, batch=2)
    assert purged == 5
    batches = [e for e in logs if e["event"] == "purged resolved incidents"]
    assert [e["incidents"] for e in batches] == [2, 2, 1]
    assert batches[-1]["total"] == 5

    left = await writer.run(partial(counts, incident_ids=seeded["old"]))
    assert set(left.values()) == {0}, left
    for kept in (seeded["recent"], seeded["open"]):
        rows = await writer.run(partial(counts, incident_ids=kept))
        assert all(n >= 1 for n in rows.values()), rows

    assert await purge_resolved_async(writer, CUTOFF) == 0  # nothing left to do


async def test_blocking_purge_needs_no_cascade(writer: Writer, store_url: str) -> None:
    """On a plain engine SQLite does not enforce foreign keys (no ON DELETE CASCADE): the
    purge deletes the referencing rows itself."""
    ids = await writer.run(
        lambda conn: [make_incident(conn, "old", resolved_at=OLD) for _ in range(3)]
    )
    engine = create_engine(sync_url(store_url))
    try:
        assert purge_resolved(engine, CUTOFF, batch=1) == 3
        with engine.connect() as conn:
            assert set(counts(conn, ids).values()) == {0}
    finally:
        engine.dispose()
