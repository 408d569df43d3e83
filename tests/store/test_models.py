"""Column types: datetimes go in and come out as aware UTC, memoised binding included."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import StatementError

from firebreak.store.db import create_sync_engine
from firebreak.store.migrate import upgrade
from firebreak.store.models import DedupKey

TEN_UTC = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
PARIS_WINTER = timezone(timedelta(hours=1))


async def test_equal_instants_in_other_zones_are_stored_as_the_same_utc_time(
    store_url: str,
) -> None:
    await asyncio.to_thread(upgrade, store_url)
    engine = create_sync_engine(store_url)
    given = {
        "utc": TEN_UTC,
        "paris": TEN_UTC.astimezone(PARIS_WINTER),  # equal to the first: a memo hit
        "later": TEN_UTC + timedelta(microseconds=1),
        "utc again": TEN_UTC,
    }
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(DedupKey),
                [{"kind": "slack", "key": k, "seen_at": at} for k, at in given.items()],
            )
            with pytest.raises(StatementError, match="naive datetime"):
                conn.execute(
                    insert(DedupKey).values(
                        kind="slack", key="naive", seen_at=TEN_UTC.replace(tzinfo=None)
                    )
                )
        with engine.connect() as conn:
            stored = dict(conn.execute(select(DedupKey.key, DedupKey.seen_at)).all())
    finally:
        engine.dispose()
    assert stored == {k: at.astimezone(UTC) for k, at in given.items()}
    assert all(at.utcoffset() == timedelta(0) for at in stored.values())
    assert stored["later"] - stored["utc"] == timedelta(microseconds=1)
