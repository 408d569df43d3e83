"""Slack delivery state on the store writer's blocking connection, on both databases: the
answer other replicas rely on (the lease holder) comes from UPDATE and INSERT row counts."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial

from firebreak.store import outbox
from firebreak.store.writer import Writer


async def test_a_lease_has_one_holder_until_it_expires(writer: Writer) -> None:
    def take(owner: str, ttl_s: float):
        return partial(
            outbox.acquire_lease, name="drain", owner=owner, ttl=timedelta(seconds=ttl_s)
        )

    assert await writer.run(take("a", 0.2))
    assert not await writer.run(take("b", 0.2)), "held by a"
    assert await writer.run(take("a", 0.2)), "the holder renews"
    await asyncio.sleep(0.3)
    assert await writer.run(take("b", 30)), "expired: b takes it over"
    await writer.run(partial(outbox.release_lease, name="drain", owner="b"))
    assert await writer.run(take("a", 30)), "released: free at once"
