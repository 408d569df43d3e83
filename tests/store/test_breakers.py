"""Forced circuit breaker states across replicas: two (and more) breaker boards sharing one
store (SQLite and PostgreSQL) through store/breakers.py, each with its own engine and writer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import pytest
from prometheus_client import CollectorRegistry

from firebreak.store.breakers import BreakerOverrides, read_overrides
from firebreak.store.db import create_engine, create_sync_engine
from firebreak.store.migrate import upgrade
from firebreak.store.writer import Writer
from firebreak.tools.breaker import BreakerBoard
from firebreak.tools.errors import CircuitOpenError

Replica = Callable[[], Awaitable[BreakerBoard]]


@pytest.fixture
async def replica(store_url: str) -> AsyncIterator[Replica]:
    """Starts a "replica": a breaker board with `loki` and `llm:openai` on the shared store."""
    await asyncio.to_thread(upgrade, store_url)
    async with AsyncExitStack() as stack:

        async def start() -> BreakerBoard:
            engine = create_engine(store_url)
            stack.push_async_callback(engine.dispose)
            writer = Writer(create_sync_engine(store_url))
            await writer.start()
            stack.push_async_callback(writer.stop)
            store = BreakerOverrides(engine, writer)
            board = BreakerBoard(registry=CollectorRegistry(), store=store)
            board.add("loki")
            board.add("llm:openai")
            await board.sync()
            return board

        yield start


async def ok() -> str:
    return "answer"


def actions(board: BreakerBoard, action: str) -> float:
    value = board.metrics.actions.labels("loki", action)._value.get()
    return float(value)


async def test_a_forced_open_reaches_every_replica_and_holds_until_close(replica: Replica) -> None:
    first, second = await replica(), await replica()
    await first.act("loki", "open", by="U0OPS")
    loki_first, loki_second = first.get("loki"), second.get("loki")
    assert loki_first is not None and loki_second is not None
    with pytest.raises(CircuitOpenError):
        await loki_first.call(ok)
    assert await loki_second.call(ok) == "answer"  # not synced yet

    await second.sync()
    with pytest.raises(CircuitOpenError, match="forced open by an operator"):
        await loki_second.call(ok)
    assert second.get("llm:openai").state == "closed"  # type: ignore[union-attr]
    await second.sync()  # nothing new: applied once
    assert actions(second, "open") == 1

    late = await replica()  # a replica started after the action honours it at once
    assert late.get("loki").forced  # type: ignore[union-attr]

    await second.act("loki", "close", by="U0OPS")
    await first.sync()
    await late.sync()
    for board in (first, second, late):
        assert await board.get("loki").call(ok) == "answer"  # type: ignore[union-attr]
        assert board.get("loki").state == "closed"  # type: ignore[union-attr]

    fresh = await replica()  # the latest action is a close: nothing to undo at start
    assert actions(fresh, "close") == 0 and not fresh.get("loki").forced  # type: ignore[union-attr]


async def test_racing_actions_converge_on_the_last_write(replica: Replica, store_url: str) -> None:
    first, second = await replica(), await replica()
    await asyncio.gather(first.act("loki", "open"), second.act("loki", "reset"))
    await first.sync()
    await second.sync()
    states = {board.get("loki").forced for board in (first, second)}  # type: ignore[union-attr]
    assert len(states) == 1  # both replicas agree, whichever write came last
    assert await stored_versions(store_url) == [("loki", 2)]


async def stored_versions(store_url: str) -> list[tuple[str, int]]:
    engine = create_engine(store_url)
    try:
        async with engine.connect() as conn:
            return [(row.name, row.version) for row in await read_overrides(conn)]
    finally:
        await engine.dispose()


async def test_an_unknown_breaker_is_refused_and_nothing_is_stored(
    replica: Replica, store_url: str
) -> None:
    board = await replica()
    with pytest.raises(KeyError):
        await board.act("nope", "open")
    with pytest.raises(ValueError):
        await board.act("loki", "explode")
    assert await stored_versions(store_url) == []
