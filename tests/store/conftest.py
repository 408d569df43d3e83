"""Fixtures of the store tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from firebreak.store.db import create_sync_engine
from firebreak.store.migrate import upgrade
from firebreak.store.writer import Writer


@pytest.fixture
async def writer(store_url: str) -> AsyncIterator[Writer]:
    """A running store writer on a migrated database (SQLite and PostgreSQL)."""
    await asyncio.to_thread(upgrade, store_url)
    writer = Writer(create_sync_engine(store_url))
    await writer.start()
    yield writer
    await writer.stop()
