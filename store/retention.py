"""Retention: resolved incidents older than `store.retention_days` are deleted, with every row
that references them.

Why explicit deletes and not only `ON DELETE CASCADE`: SQLite enforces foreign keys only on
connections that ask for it, and a table added later might forget the clause. The rows to
delete are found from the models' foreign keys (any table referencing `incidents`, and any
table referencing those, at any depth), so a new table is covered the day it is declared.

Work goes in batches of incidents, each batch one transaction: a purge of a year of history
never holds the store's write lock for long, and an interrupted purge leaves only whole
incidents behind. On PostgreSQL the batch's incidents are locked (`FOR UPDATE SKIP LOCKED`)
so a replica reopening one at that moment waits, or is skipped, instead of losing rows.

Not in the store, so not purged here: the LangGraph checkpoints of old investigation runs
(their own file or tables, keyed by thread id) and the scheduler's job store.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from functools import partial
from typing import Any

import structlog
from sqlalchemy import Column, Connection, Engine, Table, delete, select

from firebreak.store.models import Base, Incident
from firebreak.store.schemas import IncidentStatus
from firebreak.store.writer import Writer

__all__ = ["DEFAULT_BATCH", "purge_batch", "purge_resolved", "purge_resolved_async"]

log = structlog.get_logger(__name__)

DEFAULT_BATCH = 200
_MAX_DEPTH = 8  # foreign-key chains are two deep today; a cycle would stop here


def purge_batch(conn: Connection, older_than: datetime, batch: int = DEFAULT_BATCH) -> int:
    """Delete up to `batch` incidents resolved before `older_than`, and everything that
    references them, in the caller's transaction; returns how many incidents went."""
    ids = list(
        conn.scalars(
            select(Incident.id)
            .where(
                Incident.status == IncidentStatus.RESOLVED.value,
                Incident.resolved_at < older_than,
            )
            .order_by(Incident.id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
    )
    if not ids:
        return 0
    incidents = Incident.__table__
    _delete_rows(conn, incidents, incidents.c.id, ids, depth=0)
    return len(ids)


def purge_resolved(engine: Engine, older_than: datetime, batch: int = DEFAULT_BATCH) -> int:
    """Every incident resolved before `older_than`, one committed batch after another.
    Blocking: `firebreak db purge` calls it; from async code use `purge_resolved_async`."""
    total = 0
    while True:
        with engine.begin() as conn:
            purged = purge_batch(conn, older_than, batch)
        total += _logged(purged, total, older_than)
        if purged < batch:
            return total


async def purge_resolved_async(
    writer: Writer, older_than: datetime, batch: int = DEFAULT_BATCH
) -> int:
    """`purge_resolved` through the store writer: each batch is one writer job, so the purge
    takes turns with the hot writes instead of competing with them for SQLite's lock."""
    total = 0
    while True:
        purged = await writer.run(partial(purge_batch, older_than=older_than, batch=batch))
        total += _logged(purged, total, older_than)
        if purged < batch:
            return total


def _logged(purged: int, before: int, older_than: datetime) -> int:
    if purged:
        log.info(
            "purged resolved incidents",
            incidents=purged,
            total=before + purged,
            resolved_before=older_than.isoformat(),
        )
    return purged


def _delete_rows(
    conn: Connection, table: Table, column: Column[Any], keys: Any, depth: int
) -> None:
    """Delete `table` rows whose `column` is in `keys` (a list or a subquery), after the rows
    of every table that references them."""
    if depth > _MAX_DEPTH:
        raise RuntimeError(f"foreign keys nest deeper than {_MAX_DEPTH} below {table.name}")
    for child, child_column, parent_column in _referencing(table):
        parent_keys = select(parent_column).where(column.in_(keys))
        _delete_rows(conn, child, child_column, parent_keys, depth + 1)
    conn.execute(delete(table).where(column.in_(keys)))


def _referencing(table: Table) -> Iterator[tuple[Table, Column[Any], Column[Any]]]:
    """(child table, its referencing column, the referenced column of `table`)."""
    for child in Base.metadata.sorted_tables:
        for fk in child.foreign_keys:
            if fk.column.table is table and child is not table:
                yield child, fk.parent, fk.column
