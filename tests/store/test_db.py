"""SQLite connection settings: a new file is put in WAL mode once; every connection, blocking
or async, gets the per-connection settings."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from firebreak.store.db import create_engine, create_sync_engine


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
