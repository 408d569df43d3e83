"""A click, a double click and a replayed request: each Slack interaction acts once.

Slack may deliver one interaction twice (a double click sends two requests with the same
`trigger_id` and `action_ts`; a retried slash command carries `X-Slack-Retry-Num`). Real
parts: the app under uvicorn, the real escalation with a three-level ladder, the fake Slack;
both stores.
"""

from __future__ import annotations

from typing import Any

from firebreak.bot.messages.incident import ACTION_ESCALATE
from firebreak.store.schemas import EventType
from tests.bot.slack_harness import FakeInvestigations, SlackRig, slack_rig
from tests.support.slack_signing import (
    FORM,
    block_actions,
    signed_headers,
    slash_command,
)

LADDER: dict[str, Any] = {
    "escalation": {
        "policies": [
            {
                "name": "default",
                "levels": [
                    {"notify": ["U0L1"], "timeout_s": 600},
                    {"notify": ["U0L2"], "timeout_s": 600},
                    {"notify": ["U0L3"], "timeout_s": 600},
                    {"notify": ["U0L4"], "timeout_s": 600},
                ],
            }
        ]
    }
}


async def levels(rig: SlackRig, incident_id: int) -> list[int]:
    return [
        e.data["level"] for e in await rig.timeline(incident_id) if e.type == EventType.ESCALATED
    ]


async def opened(rig: SlackRig) -> tuple[int, str]:
    incident_id = await rig.alert("g1", "a")
    ts = await rig.card_ts(incident_id)
    await rig.wait(lambda: levels(rig, incident_id))
    return incident_id, ts


def ladder_rig(store_url: str) -> Any:
    return slack_rig(store_url, with_doubles=False, investigations=FakeInvestigations(), **LADDER)


async def test_a_double_clicked_escalate_pages_one_level(store_url: str) -> None:
    async with ladder_rig(store_url) as rig:
        incident_id, ts = await opened(rig)
        signed = block_actions(
            ACTION_ESCALATE,
            str(incident_id),
            message_ts=ts,
            response_url=rig.slack.response_url("double"),
        )
        first, second = await rig.post(signed), await rig.post(signed)
        await rig.wait(lambda: rig.slack.responses("double"))
        await rig.idle()
        after_double = await levels(rig, incident_id)
        later = block_actions(
            ACTION_ESCALATE,
            str(incident_id),
            message_ts=ts,
            response_url=rig.slack.response_url("later"),
        )
        assert (await rig.post(later)).status_code == 200
        await rig.wait(lambda: rig.slack.responses("later"))
        after_later = await levels(rig, incident_id)
        answers = rig.slack.responses("double")

    assert first.status_code == second.status_code == 200
    assert after_double == [1, 2]
    assert after_later == [1, 2, 3]
    assert len(answers) == 1 and "to level 2" in answers[0].params["text"]


async def test_a_replayed_escalate_command_pages_one_level(store_url: str) -> None:
    async with ladder_rig(store_url) as rig:
        incident_id, _ts = await opened(rig)
        body, headers = slash_command(
            f"escalate {incident_id}", response_url=rig.slack.response_url("cmd")
        )
        answers = [await rig.post((body, headers))]
        retried = signed_headers(body, content_type=FORM, retry_num=1)
        answers.append(await rig.post((body, retried)))
        answers.append(await rig.post((body, headers)))
        await rig.idle()
        after = await levels(rig, incident_id)
        again, _ = slash_command(f"escalate {incident_id}", response_url=rig.slack.response_url())
        deliberate = await rig.post((again, signed_headers(again, content_type=FORM)))
        after_deliberate = await levels(rig, incident_id)

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert "to level 2" in answers[0].json()["text"]
    assert after == [1, 2]
    assert deliberate.status_code == 200 and after_deliberate == [1, 2, 3]
