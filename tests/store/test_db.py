"""Engines: SQLite's connection settings (a new file is put in WAL mode once; every
connection, blocking or async, gets the per-connection settings), and bulk inserts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError

from firebreak.store.db import create_engine, create_sync_engine, insert_rows
from firebreak.store.migrate import upgrade
from firebreak.store.models import Alert, Incident

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
INCIDENT = {
    "title": "t",
    "status": "triggered",
    "severity": "warning",
    "service": "api",
    "labels": {},
    "created_at": NOW,
    "updated_at": NOW,
}


async def test_sqlite_files_are_wal_and_every_connection_is_set_up(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    blocking = create_sync_engine(url)
    with blocking.connect() as conn:  # the first connection switches the new file
        assert conn.scalar(text("PRAGMA journal_mode")) == "wal"
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:  # later ones find it switched
            assert await conn.scalar(text("PRAGMA journal_mode")) == "wal"
            assert await conn.scalar(text("PRAGMA synchronous")) == 2  # FULL
            assert await conn.scalar(text("PRAGMA foreign_keys")) == 1
            assert await conn.scalar(text("PRAGMA busy_timeout")) == 30000
    finally:
        await engine.dispose()
        blocking.dispose()


async def test_insert_rows_binds_as_an_insert_would_on_both_stores(store_url: str) -> None:
    """COPY on PostgreSQL, an INSERT elsewhere: the same rows come back, JSON, aware UTC
    datetimes, NULLs and COPY's special characters included; a row breaking a constraint
    fails all of them."""
    await asyncio.to_thread(upgrade, store_url)
    engine = create_sync_engine(store_url)
    paris = datetime(2026, 11, 22, 11, 0, tzinfo=timezone(timedelta(hours=1)))
    rows = [
        {
            "incident_id": 1,
            "fingerprint": f"fp{n}",
            "status": "firing",
            "starts_at": paris,
            "ends_at": None if n else NOW,
            "labels": {"alertname": "tab\there", "n": str(n)},
            "annotations": {"summary": "new\nline, back\\slash, \\N", "none": None},
            "generator_url": "http://prometheus:9090/graph?g0.expr=up%3D%3D0",
            "received_at": NOW,
            "updated_at": NOW,
        }
        for n in range(3)
    ]
    try:
        with engine.begin() as conn:
            conn.execute(insert(Incident).values(id=1, **INCIDENT))
            insert_rows(conn, Alert.__table__, rows)
            insert_rows(conn, Alert.__table__, [])  # nothing to do
        with pytest.raises(IntegrityError), engine.begin() as conn:
            insert_rows(conn, Alert.__table__, [{**rows[0], "fingerprint": "new"}, rows[1]])
        with engine.connect() as conn:
            columns = [Alert.__table__.c[name] for name in rows[0]]
            stored = conn.execute(select(*columns).order_by(Alert.id)).mappings().all()
    finally:
        engine.dispose()
    assert [dict(row) for row in stored] == rows  # and not the "new" one
    assert all(row["starts_at"].utcoffset() == timedelta(0) for row in stored)


def test_postgresql_blocking_connections_plan_every_statement(pg_database: str) -> None:
    """No generic plan kept from when the alerts table was small (see store/db.py)."""
    for durable in (True, False):
        engine = create_sync_engine(pg_database, durable=durable)
        try:
            with engine.connect() as conn:
                assert conn.scalar(text("SHOW plan_cache_mode")) == "force_custom_plan"
                assert conn.scalar(text("SHOW synchronous_commit")) == ("on" if durable else "off")
        finally:
            engine.dispose()
