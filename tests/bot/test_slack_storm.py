"""During an alert storm the outbox delivers one lane at a time: Slack takes about a
message a second per channel anyway, and the CPU goes to acknowledging Alertmanager."""

from __future__ import annotations

import asyncio
import itertools

from tests.bot.slack_harness import SlackRig, slack_rig
from tests.support.payloads import alert, group
from tests.support.waiting import eventually


def cards_posted(rig: SlackRig) -> int:
    return sum(
        1 for call in rig.slack.calls("chat.postMessage", ok=True) if "thread_ts" not in call.params
    )


async def test_cards_take_turns_while_a_storm_is_taken_in(store_url: str) -> None:
    async with slack_rig(store_url) as rig:
        rig.slack.latency_s = 0.3

        async def posted(count: int) -> bool:
            return cards_posted(rig) >= count

        for n in range(4):  # no storm: the four cards go out side by side
            await rig.alert(f"calm-{n}", f"calm-{n}")
        await eventually(lambda: posted(4), within=20)
        assert rig.slack.max_in_flight >= 2

        stop = asyncio.Event()
        numbers = itertools.count()

        async def poster(number: int) -> None:
            while not stop.is_set():
                payload = group(f"storm-{number % 3}", [alert(f"s-{next(numbers)}")])
                response = await rig.client.post("/webhooks/alertmanager", json=payload)
                assert response.status_code == 200

        storm = [asyncio.create_task(poster(number)) for number in range(24)]
        try:

            async def busy() -> bool:
                return rig.runtime.intake.busy

            await eventually(busy, within=20)
            await eventually(lambda: posted(7), within=20)  # the storm's own three cards
            rig.slack.max_in_flight = 0
            for n in range(4):  # four more incidents open during the storm
                await rig.alert(f"late-{n}", f"late-{n}")
            await eventually(lambda: posted(11), within=30)
            assert rig.runtime.intake.busy
        finally:
            stop.set()
            await asyncio.gather(*storm)
        assert rig.slack.max_in_flight == 1
