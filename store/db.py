"""Engine set-up for SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeAlias

from sqlalchemy import Connection, Dialect, Engine, Row, Table, event, insert, inspect, text
from sqlalchemy import create_engine as create_sync_engine_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.types import TypeEngine

from firebreak.store.text import json_dumps

# A result row of whatever columns, read by name (`row.id`); `Row[Any]` would be one column.
AnyRow: TypeAlias = Row[*tuple[Any, ...]]

# psycopg prepares a statement run five times, and PostgreSQL may then keep a generic plan
# made for the table as it was: in a storm the alerts table grows from nothing, and the plan
# of the stored-alert read went on hashing all of it (6 ms a batch at 15k alerts, and
# growing, where an index lookup takes 1 ms: auto_explain). Planning each time costs ~0.1 ms.
CUSTOM_PLANS = "-c plan_cache_mode=force_custom_plan"
# A server that does not answer (a host gone, packets dropped) fails a connection attempt after
# this long instead of the operating system's TCP timeout (minutes), which held the writer.
CONNECT_TIMEOUT_S = 5
SYNC_DRIVERS = {"sqlite+aiosqlite": "sqlite", "postgresql+asyncpg": "postgresql+psycopg"}


def create_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite gets WAL, fsync on every commit and foreign keys. Every engine
    serializes JSON with `json_dumps` (store/text.py: no NUL, which PostgreSQL refuses), and
    PostgreSQL pools test a connection before handing it out (`pool_pre_ping`), so a server
    that restarted is reconnected to instead of failing the next statement."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(url, connect_args={"timeout": 30}, json_serializer=json_dumps)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
        connect_args={"timeout": CONNECT_TIMEOUT_S},
        json_serializer=json_dumps,
    )


def create_sync_engine(url: str, *, durable: bool = True) -> Engine:
    """A blocking engine on the same database, for work that runs whole in one thread.

    `durable=False` lets commits return before they reach the disk (SQLite
    `synchronous=NORMAL`, PostgreSQL `synchronous_commit=off`): only for data derived from
    durable rows and rebuilt from them, such as APScheduler's job store."""
    blocking = sync_url(url)
    if make_url(blocking).get_backend_name() == "sqlite":
        engine = create_sync_engine_(
            blocking, connect_args={"timeout": 30}, json_serializer=json_dumps
        )
        event.listen(engine, "connect", partial(_sqlite_pragmas, durable=durable))
        return engine
    settings = [CUSTOM_PLANS] if durable else [CUSTOM_PLANS, "-c synchronous_commit=off"]
    return create_sync_engine_(
        blocking,
        pool_size=2,
        max_overflow=2,
        pool_pre_ping=True,
        connect_args={"options": " ".join(settings), "connect_timeout": CONNECT_TIMEOUT_S},
        json_serializer=json_dumps,
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, durable: bool = True) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    ensure_wal(cursor)
    # durable: acknowledged means on disk
    cursor.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def is_memory_sqlite(url: str) -> bool:
    parsed = make_url(url)
    database = parsed.database or ""
    return parsed.get_backend_name() == "sqlite" and (
        database in {"", ":memory:"} or database.startswith("file::memory:")
    )


def ensure_wal(cursor: Any) -> None:
    """WAL mode is a property of the file: switch only a file that is not in it yet. The
    switch needs an exclusive lock that SQLite does not wait for (no busy handler), so asking
    for it on every connect failed now and then with "database is locked" while other
    connections were busy (seen once in five `firebreak demo` runs on a loaded machine)."""
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() != "wal":
        cursor.execute("PRAGMA journal_mode=WAL")


def sync_url(url: str) -> str:
    """The same database through a blocking driver (Alembic, APScheduler's job store)."""
    parsed = make_url(url)
    driver = SYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ValueError(f"unsupported store driver {parsed.drivername}")
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def conflict_insert(conn: Any, table: Any) -> Any:
    """An INSERT that understands ``on_conflict_do_nothing`` on both back ends (`conn`: a
    `Connection` or an `AsyncConnection`). Its `rowcount` says whether the row went in: psycopg
    loses an INSERT's rowcount when SQLAlchemy closes the cursor, unless asked to keep it."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).execution_options(preserve_rowcount=True)


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Many rows (each with the same keys) into `table` in one statement: COPY on PostgreSQL,
    an executemany INSERT elsewhere. The values are bound by the columns' own SQLAlchemy types,
    as the INSERT binds them, and a row that breaks a constraint fails them all with the same
    exception. psycopg pipelines an INSERT's rows as one Bind and Execute each and reads a
    result per row: during a storm the writer's thread spent two thirds of its time there
    (py-spy); with COPY, which streams the rows and answers once, it is idle for
    two fifths of it."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), list(rows))
        return
    import psycopg  # the PostgreSQL writer's only: SQLite processes never load it
    from psycopg import sql as psycopg_sql

    names = list(rows[0])
    binders = [_binder(table.c[name].type, conn.dialect) for name in names]
    copy_sql = psycopg_sql.SQL("COPY {} ({}) FROM STDIN").format(
        psycopg_sql.Identifier(table.name),
        psycopg_sql.SQL(", ").join(map(psycopg_sql.Identifier, names)),
    )
    driver = conn.connection.driver_connection
    assert driver is not None, "a checked-out connection has its psycopg connection"
    try:
        with driver.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for row in rows:
                copy.write_row([bind(row[name]) for bind, name in zip(binders, names, strict=True)])
    except psycopg.Error as exc:  # as SQLAlchemy raises it for an INSERT (IntegrityError...)
        raise DBAPIError.instance(copy_sql.as_string(driver), None, exc, psycopg.Error) from exc


def _binder(column_type: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any]:
    process = column_type.dialect_impl(dialect).bind_processor(dialect)
    return process if process is not None else _as_is


def _as_is(value: Any) -> Any:
    return value


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def is_migrated(connection: Connection) -> bool:
    """Whether any migration was applied (Alembic's version table holds a row): a store never
    migrated has no tables yet. Asked without Alembic, whose import costs the read commands
    of the command line 90 ms."""
    if not inspect(connection).has_table("alembic_version"):
        return False
    return connection.execute(text("SELECT 1 FROM alembic_version LIMIT 1")).first() is not None
