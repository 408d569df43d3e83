"""Store outages told apart from bad work, and the writer's readiness through one."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, event, insert, text
from sqlalchemy.exc import IntegrityError, OperationalError

from firebreak.store.db import create_sync_engine
from firebreak.store.health import describe, is_outage
from firebreak.store.incidents import utcnow
from firebreak.store.migrate import upgrade
from firebreak.store.models import DedupKey
from firebreak.store.writer import Writer
from tests.conftest import make_config
from tests.support.app import RunningApp, run_app
from tests.support.payloads import alert, group
from tests.support.waiting import eventually


def _sqlite_error(sql: str) -> sqlite3.Error:
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(sql)
    except sqlite3.Error as exc:
        return exc
    raise AssertionError("no error")


def test_outages_are_the_store_being_away_not_the_work_being_wrong() -> None:
    full = sqlite3.OperationalError("database or disk is full")
    wrapped = OperationalError("INSERT ...", {}, full)
    assert is_outage(wrapped) and is_outage(full)
    assert describe(wrapped) == "OperationalError: database or disk is full"
    assert is_outage(psycopg.OperationalError("the connection is closed"))
    assert is_outage(RuntimeError("node failed")) is False
    chained = RuntimeError("node failed")
    chained.__cause__ = psycopg.OperationalError("server closed the connection unexpectedly")
    assert is_outage(chained)
    assert is_outage(ExceptionGroup("tasks", [ValueError("x"), full]))
    assert not is_outage(_sqlite_error("SELECT * FROM nowhere"))  # a bug, not an outage
    assert not is_outage(IntegrityError("INSERT ...", {}, sqlite3.IntegrityError("UNIQUE")))
    assert not is_outage(psycopg.errors.UniqueViolation("duplicate key"))
    assert is_outage(ConnectionRefusedError(111, "Connect call failed"))  # asyncpg, unwrapped
    http = RuntimeError("the LLM is unreachable")
    http.__context__ = ConnectionRefusedError(111, "Connect call failed")
    assert not is_outage(http)


def _seen(key: str):
    def work(conn: Connection) -> str:
        conn.execute(insert(DedupKey).values(kind="slack", key=key, seen_at=utcnow()))
        return key

    return work


async def test_writes_failing_make_the_writer_not_ready_until_a_probe_commits(
    tmp_path: Path,
) -> None:
    """SQLite's `max_page_count` stands in for a full disk here (tests/firebreak has the real
    one): every connection the writer opens is capped while `room` is False."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'firebreak.db'}"
    await asyncio.to_thread(upgrade, url)
    engine = create_sync_engine(url)
    room = {"free": True}

    @event.listens_for(engine, "begin")
    def cap(conn: Connection) -> None:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
        limit = 1_000_000 if room["free"] else pages
        conn.exec_driver_sql(f"PRAGMA max_page_count={limit}")

    writer = Writer(engine, probe_every_s=0.1)
    await writer.start()
    try:
        assert writer.readiness() == "ok"
        room["free"] = False
        big = [_big(f"k{i}") for i in range(5)]
        results = await asyncio.gather(*(writer.run(work) for work in big), return_exceptions=True)
        assert all(isinstance(r, OperationalError) for r in results), results
        reason = writer.readiness()
        assert reason.startswith("writes failing: OperationalError: database or disk is full")
        assert "s ago" in reason
        await asyncio.sleep(0.5)  # probes keep failing: still not ready
        assert writer.readiness().startswith("writes failing")
        room["free"] = True
        await eventually(lambda: _ready(writer), within=5)
        assert await writer.run(_big("after")) == "after"
    finally:
        await writer.stop()


def _big(key: str):
    def work(conn: Connection) -> str:
        conn.execute(insert(DedupKey).values(kind="slack", key=key, seen_at=utcnow()))
        conn.execute(text("CREATE TABLE IF NOT EXISTS filler (x BLOB)"))
        conn.execute(text("INSERT INTO filler VALUES (randomblob(200000))"))
        return key

    return work


async def _ready(writer: Writer) -> bool:
    return writer.readiness() == "ok"


@pytest.mark.parametrize("size", [1, 3])
async def test_a_bad_item_does_not_make_the_store_not_ready(writer: Writer, size: int) -> None:
    results: list[Any] = await asyncio.gather(
        *(writer.run(_seen("same")) for _ in range(size + 1)), return_exceptions=True
    )
    assert sum(isinstance(r, IntegrityError) for r in results) == size
    assert writer.readiness() == "ok"


async def test_readyz_says_why_while_writes_fail_and_webhooks_get_a_json_503(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'firebreak.db'}"
    async with run_app(make_config(url)) as app:
        engine = app.runtime.writer.engine
        room = {"free": False}

        @event.listens_for(engine, "begin")
        def cap(conn: Connection) -> None:
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
            conn.exec_driver_sql(f"PRAGMA max_page_count={1_000_000 if room['free'] else pages}")

        many = [alert(f"fp{i}") for i in range(200)]
        refused = await app.client.post("/webhooks/alertmanager", json=group("g1", many))
        ready = await app.client.get("/readyz")
        alive = await app.client.get("/healthz")
        room["free"] = True
        await eventually(lambda: _ready_over_http(app), within=10)
        stored = await app.client.post("/webhooks/alertmanager", json=group("g1", many))

    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "5"
    assert refused.json()["error"] == "store_unavailable"
    assert "database or disk is full" in refused.json()["detail"]
    assert ready.status_code == 503 and ready.json()["ready"] is False
    assert ready.json()["checks"]["store"].startswith(
        "writes failing: OperationalError: database or disk is full (last failure"
    )
    assert alive.status_code == 200
    assert stored.status_code == 200 and stored.json()["alerts_written"] == 200


async def _ready_over_http(app: RunningApp) -> bool:
    response = await app.client.get("/readyz")
    return response.status_code == 200 and response.json()["checks"]["store"] == "ok"
