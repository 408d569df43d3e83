"""The operators' circuit breaker actions, shared by every replica.

`POST /api/v1/breakers/{name}/open|close|reset` lands on one replica; the others must honour a
forced open too. So the latest action per breaker is stored here, with a `version` that grows
with every write (an upsert computes it in the database, so two replicas writing at once still
get distinct versions). Each replica reads the table on a sweep and applies every version it
has not applied yet (tools/breaker.py `BreakerBoard.sync`); calls never wait on the store.

`BreakerOverrides` is the `ForcedStateStore` of tools/breaker.py: the write runs on the store
writer (store/writer.py) like every other write, the read on the async engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from firebreak.store.incidents import utcnow
from firebreak.store.models import BreakerOverride
from firebreak.store.writer import Writer

__all__ = ["BreakerOverrides", "StoredOverride", "read_overrides", "write_override"]


@dataclass(frozen=True)
class StoredOverride:
    name: str
    action: str
    version: int
    by: str
    at: datetime


def write_override(
    conn: Connection, *, name: str, action: str, by: str, now: datetime
) -> StoredOverride:
    """Record `action` as `name`'s latest (blocking: run it on the store writer)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    table = BreakerOverride.__table__
    insert = dialect.insert(table).values(
        name=name, action=action, version=1, changed_by=by[:200], changed_at=now
    )
    upsert = insert.on_conflict_do_update(
        index_elements=[table.c.name],
        set_={
            "action": insert.excluded.action,
            "version": table.c.version + 1,
            "changed_by": insert.excluded.changed_by,
            "changed_at": insert.excluded.changed_at,
        },
    ).returning(table.c.version)
    version = conn.execute(upsert).scalar_one()
    return StoredOverride(name, action, version, by, now)


async def read_overrides(conn: AsyncConnection) -> list[StoredOverride]:
    table = BreakerOverride.__table__
    rows = await conn.execute(select(table).order_by(table.c.name))
    return [
        StoredOverride(row.name, row.action, row.version, row.changed_by, row.changed_at)
        for row in rows
    ]


class BreakerOverrides:
    """The breakers' forced states in the store (tools/breaker.py `ForcedStateStore`)."""

    def __init__(self, engine: AsyncEngine, writer: Writer) -> None:
        self._engine = engine
        self._writer = writer

    async def load(self) -> list[StoredOverride]:
        async with self._engine.connect() as conn:
            return await read_overrides(conn)

    async def save(self, name: str, action: str, by: str) -> int:
        work = partial(write_override, name=name, action=action, by=by, now=utcnow())
        stored = await self._writer.run(work)
        return stored.version
