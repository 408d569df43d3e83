"""Shared fixtures. Every test that touches the store runs on SQLite and on PostgreSQL.

PostgreSQL: `$FIREBREAK_TEST_PG` (default postgresql+asyncpg://postgres@127.0.0.1:5432/test).
Each test session works in a database of its own, created from that server and dropped at the
end, and each test starts from an empty schema.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from firebreak.config import Config
from firebreak.store.db import create_sync_engine
from firebreak.store.migrate import upgrade
from firebreak.store.writer import Writer

# `local_llm` (a real model server), `own_postgres` (a PostgreSQL to restart at will),
# `small_disk` (a tmpfs to fill up)
pytest_plugins = ["tests.support.local_llm", "tests.support.pg_server", "tests.support.small_disk"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slow: takes minutes (fresh virtual environment, pip install); runs by default, "
        '-m "not slow" skips it',
    )


PG_URL = os.environ.get("FIREBREAK_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A throw-away PostgreSQL database for this test session."""
    base = make_url(PG_URL)
    name = f"firebreak_test_{uuid.uuid4().hex[:10]}"
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'firebreak.db'}"
    url = request.getfixturevalue("pg_database")
    sync = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(sync, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return url


def make_config(store_url: str, **sections: Any) -> Config:
    """A config for tests: defaults, the given store, and any section overrides."""
    return Config(store={"url": store_url}, **sections)


@pytest.fixture
async def writer(store_url: str) -> AsyncIterator[Writer]:
    """A running store writer on a migrated database (SQLite and PostgreSQL)."""
    await asyncio.to_thread(upgrade, store_url)
    writer = Writer(create_sync_engine(store_url))
    await writer.start()
    yield writer
    await writer.stop()
