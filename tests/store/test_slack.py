"""Slack delivery state on the store writer's blocking connection, on both databases: the
answers other replicas rely on (first delivery, lease holder) come from INSERT row counts."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial

from firebreak.store import slack
from firebreak.store.writer import Writer


async def test_an_event_is_first_delivered_once(writer: Writer) -> None:
    first = partial(slack.first_delivery, key="event:Ev1")
    answers = await asyncio.gather(writer.run(first), writer.run(first))
    later = await writer.run(first)
    other = await writer.run(partial(slack.first_delivery, key="event:Ev2"))
    assert answers == [True, False] and later is False and other is True


async def test_a_lease_has_one_holder_until_it_expires(writer: Writer) -> None:
    def take(owner: str, ttl_s: float):
        return partial(slack.acquire_lease, name="drain", owner=owner, ttl=timedelta(seconds=ttl_s))

    assert await writer.run(take("a", 0.2))
    assert not await writer.run(take("b", 0.2)), "held by a"
    assert await writer.run(take("a", 0.2)), "the holder renews"
    await asyncio.sleep(0.3)
    assert await writer.run(take("b", 30)), "expired: b takes it over"
    await writer.run(partial(slack.release_lease, name="drain", owner="b"))
    assert await writer.run(take("a", 30)), "released: free at once"
