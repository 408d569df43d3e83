"""PostgreSQL restarted under Firebreak: a server of the test's own (tests/support/pg_server.py),
stopped and started while Firebreak runs."""

from __future__ import annotations

import asyncio

from langgraph.checkpoint.base import empty_checkpoint

from firebreak.agents.runner import open_checkpointer
from firebreak.store.migrate import upgrade
from tests.support.pg_server import PgServer


async def test_the_checkpointer_reconnects_after_a_restart(own_postgres: PgServer) -> None:
    await asyncio.to_thread(upgrade, own_postgres.url)
    config = {"configurable": {"thread_id": "t1", "checkpoint_ns": ""}}
    async with open_checkpointer(own_postgres.url) as saver:
        await saver.aput(config, empty_checkpoint(), {"source": "input", "step": -1}, {})
        await asyncio.to_thread(own_postgres.restart)
        found = await saver.aget_tuple(config)
    assert found is not None
