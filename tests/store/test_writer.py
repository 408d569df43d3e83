"""The group-commit writer: shared transactions, failures confined to their own caller."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, insert, select

from firebreak.store.db import create_sync_engine
from firebreak.store.incidents import utcnow
from firebreak.store.migrate import upgrade
from firebreak.store.models import DedupKey
from firebreak.store.writer import Batched, Writer
from tests.support.waiting import eventually


def _seen(key: str):
    def work(conn: Connection) -> str:
        conn.execute(insert(DedupKey).values(kind="slack", key=key, seen_at=utcnow()))
        return key

    return work


def _count(conn: Connection) -> int:
    return conn.scalar(select(func.count()).select_from(DedupKey))


def _boom(conn: Connection) -> None:
    raise ValueError("bad item")


async def test_concurrent_work_shares_a_commit_and_returns_each_result(writer: Writer) -> None:
    keys = [f"k{i}" for i in range(50)]
    results = await asyncio.gather(*(writer.run(_seen(key)) for key in keys))
    assert results == keys
    assert await writer.run(_count) == 50


async def test_a_failing_item_fails_only_its_caller(writer: Writer) -> None:
    """The batch is rolled back and retried one by one: neighbours still commit."""
    results = await asyncio.gather(
        writer.run(_seen("a")),
        writer.run(_boom),
        writer.run(_seen("a")),  # duplicate key: an IntegrityError for this one only
        writer.run(_seen("b")),
        return_exceptions=True,
    )
    assert results[0] == "a" and results[3] == "b"
    assert isinstance(results[1], ValueError)
    assert isinstance(results[2], Exception) and not isinstance(results[2], ValueError)
    assert await writer.run(_count) == 2


async def test_stop_finishes_what_was_submitted(store_url: str) -> None:
    await asyncio.to_thread(upgrade, store_url)
    writer = Writer(create_sync_engine(store_url))
    await writer.start()
    pending = [asyncio.ensure_future(writer.run(_seen(f"s{i}"))) for i in range(20)]
    await asyncio.sleep(0)
    await writer.stop()
    assert [p.result() for p in pending] == [f"s{i}" for i in range(20)]
    with pytest.raises(RuntimeError, match="not running"):
        await writer.run(_count)


async def test_batched_items_share_batches_and_return_each_result(writer: Writer) -> None:
    sizes: list[int] = []

    def many(conn: Connection, keys: list[str]) -> list[str]:
        sizes.append(len(keys))
        return [_seen(key)(conn) for key in keys]

    batched = Batched(writer, many, lambda conn, key: _seen(key)(conn))
    keys = [f"b{i}" for i in range(60)]
    assert await asyncio.gather(*(batched.run(key) for key in keys)) == keys
    assert sum(sizes) == 60 and len(sizes) < 60  # callers waiting meanwhile went together
    assert await writer.run(_count) == 60


async def test_a_batch_takes_the_items_waiting_when_its_transaction_starts(writer: Writer) -> None:
    """Not those waiting when it was queued: callers arriving one by one behind a busy writer
    all go in one batch, instead of a first batch of one and the rest after it."""
    sizes: list[int] = []

    def many(conn: Connection, keys: list[str]) -> list[str]:
        sizes.append(len(keys))
        return [_seen(key)(conn) for key in keys]

    batched = Batched(writer, many, lambda conn, key: _seen(key)(conn))
    release = threading.Event()
    busy = asyncio.ensure_future(writer.run(lambda conn: release.wait(5)))
    await asyncio.sleep(0.05)  # the writer's thread is in that transaction now
    callers = []
    for n in range(10):
        callers.append(asyncio.ensure_future(batched.run(f"w{n}")))
        await asyncio.sleep(0.01)
    assert batched.pending == 10
    release.set()
    assert await asyncio.gather(*callers) == [f"w{n}" for n in range(10)]
    assert await busy is True
    assert sizes == [10]


async def test_batched_items_fail_cleanly_once_the_writer_stopped(store_url: str) -> None:
    await asyncio.to_thread(upgrade, store_url)
    writer = Writer(create_sync_engine(store_url))
    await writer.start()
    await writer.stop()
    batched = Batched(writer, lambda conn, keys: keys, lambda conn, key: key)
    for _ in range(2):  # and the next caller is not left waiting either
        with pytest.raises(RuntimeError, match="not running"):
            await asyncio.wait_for(batched.run("late"), 5)


async def test_a_failing_batch_is_retried_item_by_item(writer: Writer) -> None:
    def many(conn: Connection, keys: list[str]) -> list[str]:
        return [one(conn, key) for key in keys]

    def one(conn: Connection, key: str) -> str:
        if key == "bad":
            raise ValueError("bad item")
        return _seen(key)(conn)

    batched = Batched(writer, many, one)
    results = await asyncio.gather(
        *(batched.run(key) for key in ["a", "bad", "c"]), return_exceptions=True
    )
    assert results[0] == "a" and results[2] == "c"
    assert isinstance(results[1], ValueError)
    assert await writer.run(_count) == 2  # the batch's writes were rolled back, then redone


async def test_a_failing_builder_fails_its_caller_and_the_writer_goes_on(writer: Writer) -> None:
    def broken() -> Callable[[Connection], str]:
        raise ValueError("no work today")

    results = await asyncio.gather(
        writer.run(_seen("before")),
        writer.run_built(broken),
        writer.run(_seen("after")),
        return_exceptions=True,
    )
    assert results[0] == "before" and results[2] == "after"
    assert isinstance(results[1], ValueError)
    assert await writer.run(_count) == 2


async def test_on_sqlite_the_writer_checkpoints_the_wal_itself(tmp_path: Path) -> None:
    """Its commits never copy the WAL into the database (the stall every half second of a
    storm); its own checkpoints do, soon after."""
    path = tmp_path / "store.db"
    url = f"sqlite+aiosqlite:///{path}"
    await asyncio.to_thread(upgrade, url)
    writer = Writer(create_sync_engine(url))
    await writer.start()
    try:
        pragma = await writer.run(lambda conn: conn.exec_driver_sql("PRAGMA wal_autocheckpoint"))
        assert pragma.scalar() == 0
        size_before = path.stat().st_size
        padding = "x" * 1000
        await asyncio.gather(*(writer.run(_seen(f"{n}-{padding}")) for n in range(2000)))

        # ~2 MB committed: below the 1000 pages (4 MB) at which a commit would checkpoint
        async def checkpointed() -> bool:
            return path.stat().st_size > size_before + 1_000_000

        await eventually(checkpointed, within=10)
    finally:
        await writer.stop()


async def test_the_wal_starts_over_while_the_writer_keeps_writing(tmp_path: Path) -> None:
    """Checkpoints beside a busy writer never quite catch up; past its limit the writer lets
    one finish between two transactions, so the WAL file stops growing."""
    path = tmp_path / "store.db"
    url = f"sqlite+aiosqlite:///{path}"
    await asyncio.to_thread(upgrade, url)
    # about 1 MB; checkpoints often enough that many fall within the waves even on a machine
    # that writes all 8 MB in 0.4 s (at the default 0.25 s the WAL reached 20 MB before the
    # first one there)
    writer = Writer(create_sync_engine(url), wal_limit_frames=250, checkpoint_every_s=0.01)
    await writer.start()
    padding = "x" * 2000
    wal = path.with_name("store.db-wal")
    largest = 0
    try:
        for wave in range(40):  # ~8 MB, the writer never idle for long
            await asyncio.gather(*(writer.run(_seen(f"{wave}-{n}-{padding}")) for n in range(100)))
            largest = max(largest, wal.stat().st_size)
        assert await writer.run(_count) == 4000
    finally:
        await writer.stop()
    assert 0 < largest < 12_000_000  # it grows to ~30 MB when the writer never lets one finish
