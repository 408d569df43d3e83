"""`access.responders`: who may act on an incident from Slack, and where it may be read.

Real parts: the app under uvicorn, the real escalation (ladders, schedules) and Slack component,
the fake Slack Web API (`usergroups.users.list` answered as Slack answers it), requests signed
as Slack signs them; both stores. Investigations are the other component's double.
"""

from __future__ import annotations

import json
from typing import Any

from firebreak.bot.messages.feedback import (
    ACTION_FEEDBACK_CORRECT,
    ACTION_FEEDBACK_WRONG,
    feedback_value,
)
from firebreak.bot.messages.incident import (
    ACTION_ACK,
    ACTION_ESCALATE,
    ACTION_INVESTIGATE,
    ACTION_RESOLVE,
)
from firebreak.store.schemas import EventType
from tests.bot.slack_harness import CHANNEL, FakeInvestigations, SlackRig, slack_rig
from tests.support.slack_signing import block_actions, slash_command

DM = "D0MALLORY"
ACCESS: dict[str, Any] = {
    "access": {"responders": ["U0ALICE", "S0SRE", "oncall"]},
    "escalation": {
        "policies": [
            {
                "name": "default",
                "levels": [
                    {"notify": ["U0BOB"], "timeout_s": 600},
                    {"notify": ["schedule:primary"], "timeout_s": 600},
                ],
            }
        ]
    },
    "schedules": [
        {
            "name": "primary",
            "timezone": "UTC",
            "rotation": {"users": ["U0DAVE"], "start": "2026-01-01T00:00:00", "shift_hours": 8760},
        }
    ],
}


def access_rig(store_url: str, **sections: Any) -> Any:
    """Real escalation (ladders page U0BOB, then whoever is on call), doubled investigations."""
    return slack_rig(
        store_url,
        with_doubles=False,
        investigations=FakeInvestigations(),
        **{**ACCESS, **sections},
    )


async def command(rig: SlackRig, text: str, user: str, channel: str = CHANNEL) -> str:
    """Run `/incident text` as `user` in `channel`: the (ephemeral) answer's text."""
    key = f"cmd-{len(rig.slack.responses())}-{user}"
    response = await rig.post(
        slash_command(
            text, user_id=user, channel_id=channel, response_url=rig.slack.response_url(key)
        )
    )
    assert response.status_code == 200, response.text
    body = response.json() if response.content else {}
    if body.get("text") and "Working on it" not in body["text"]:
        assert body.get("response_type", "ephemeral") == "ephemeral"
        return str(body["text"]) + json.dumps(body.get("blocks") or [])
    answered = await rig.wait(lambda: rig.slack.responses(key))
    return str(answered[-1].params.get("text"))


async def click(rig: SlackRig, action_id: str, value: str, user: str, ts: str) -> str | None:
    """Click a card button; the ephemeral answer's text (None when none came within 1 s)."""
    key = f"click-{len(rig.slack.responses())}-{user}"
    response = await rig.post(
        block_actions(
            action_id, value, user_id=user, message_ts=ts, response_url=rig.slack.response_url(key)
        )
    )
    assert response.status_code == 200, response.text
    try:
        answered = await rig.wait(lambda: rig.slack.responses(key), within=3)
    except AssertionError:
        return None
    assert answered[0].params.get("response_type", "ephemeral") == "ephemeral"
    return str(answered[0].params.get("text"))


async def opened(rig: SlackRig) -> tuple[int, str]:
    """An incident whose first level (U0BOB) has been paged, and its card's ts."""
    rig.slack.add_usergroup("S0SRE", ["U0CAROL"])
    incident_id = await rig.alert("g1", "a")
    ts = await rig.card_ts(incident_id)

    async def paged() -> bool:
        return any(e.type == EventType.ESCALATED for e in await rig.timeline(incident_id))

    await rig.wait(paged)
    await rig.idle()
    return incident_id, ts


async def test_non_responders_are_refused_and_nothing_changes(store_url: str) -> None:
    async with access_rig(store_url) as rig:
        incident_id, ts = await opened(rig)
        before = await rig.timeline(incident_id)
        card_before = rig.slack.message(CHANNEL, ts)
        requests_before = list(rig.investigations.requests)  # type: ignore[union-attr]
        refusals = [
            await click(rig, action, str(incident_id), "U0MALLORY", ts)
            for action in (
                ACTION_ACK,
                ACTION_RESOLVE,
                ACTION_ESCALATE,
                ACTION_INVESTIGATE,
            )
        ]
        for sub in ("ack", "resolve", "escalate", "investigate", "postmortem", "unsilence"):
            refusals.append(await command(rig, f"{sub} {incident_id}", "U0MALLORY"))
            refusals.append(await command(rig, f"{sub} {incident_id}", "U0MALLORY", DM))
        refusals.append(await command(rig, f"silence {incident_id} 1h", "U0MALLORY"))
        await rig.idle()
        after = await rig.timeline(incident_id)
        card_after = rig.slack.message(CHANNEL, ts)
        requests_after = list(rig.investigations.requests)  # type: ignore[union-attr]

    for refusal in refusals:
        assert refusal is not None and f"Only responders of incident #{incident_id} may" in refusal
        assert "<@U0ALICE>" in refusal  # says who may
    assert "may resolve it" in refusals[1]
    assert after == before
    assert card_after["blocks"] == card_before["blocks"]
    assert requests_after == requests_before


async def test_group_members_paged_and_on_call_people_may_act(store_url: str) -> None:
    async with access_rig(store_url) as rig:
        incident_id, ts = await opened(rig)
        by_group = await click(rig, ACTION_ACK, str(incident_id), "U0CAROL", ts)
        # U0DAVE is on call for the policy's level 2 (not paged yet): a responder already
        on_call = await click(rig, ACTION_ESCALATE, str(incident_id), "U0DAVE", ts)
        paged = await command(rig, f"resolve {incident_id}", "U0BOB", DM)
        events = await rig.timeline(incident_id)

    assert by_group is None  # acknowledged: the card shows it, no ephemeral answer
    assert on_call is not None and "to level 2" in on_call
    assert "You resolved" in paged
    kinds = [(e.type, e.actor) for e in events if e.actor.startswith("U0")]
    assert (EventType.ACKNOWLEDGED, "U0CAROL") in kinds
    assert (EventType.ESCALATED, "U0DAVE") in kinds
    assert (EventType.RESOLVED, "U0BOB") in kinds


async def test_user_groups_are_read_once_within_their_ttl(store_url: str) -> None:
    async with access_rig(store_url) as rig:
        incident_id, _ts = await opened(rig)
        for _ in range(3):
            await command(rig, f"timeline {incident_id}", "U0CAROL", DM)
        calls = rig.slack.calls("usergroups.users.list")

    assert [c.params.get("usergroup") for c in calls] == ["S0SRE"]


async def test_reading_is_open_in_the_incidents_channel_and_to_responders(store_url: str) -> None:
    async with access_rig(store_url) as rig:
        incident_id, _ts = await opened(rig)
        in_channel = await command(rig, f"status {incident_id}", "U0MALLORY")
        timeline_in_channel = await command(rig, f"timeline {incident_id}", "U0MALLORY")
        elsewhere = await command(rig, f"status {incident_id}", "U0MALLORY", DM)
        timeline_elsewhere = await command(rig, f"timeline {incident_id}", "U0MALLORY", "C0OTHER")
        responder_anywhere = await command(rig, f"status {incident_id}", "U0ALICE", DM)
        listed_here = await command(rig, "list", "U0MALLORY")
        listed_elsewhere = await command(rig, "list", "U0MALLORY", DM)
        listed_for_responder = await command(rig, "list", "U0ALICE", DM)
        before = await rig.timeline(incident_id)

    assert "HighErrorRate" in in_channel and "Timeline" in timeline_in_channel
    for refused in (elsewhere, timeline_elsewhere):
        assert f"incident #{incident_id}" in refused and "in its channel" in refused
        assert "HighErrorRate" not in refused
    assert "HighErrorRate" in responder_anywhere
    assert f"#{incident_id}" in listed_here and "HighErrorRate" in listed_here
    assert "HighErrorRate" not in listed_elsewhere
    assert "HighErrorRate" in listed_for_responder
    assert all(e.type != EventType.NOTE for e in before)


async def test_feedback_from_a_non_responder_is_refused(store_url: str) -> None:
    async with access_rig(store_url) as rig:
        incident_id, _ts = await opened(rig)
        reply_ts = await rig.publish_analysis(incident_id, "inv-1-abc")
        value = feedback_value(incident_id, "inv-1-abc")
        refused = await click(rig, ACTION_FEEDBACK_CORRECT, value, "U0MALLORY", reply_ts)
        wrong = await click(rig, ACTION_FEEDBACK_WRONG, value, "U0MALLORY", reply_ts)
        events = await rig.timeline(incident_id)
        opened_views = rig.slack.calls("views.open")

    assert refused is not None and "Only responders" in refused
    assert wrong is not None and "Only responders" in wrong
    assert all(e.type != EventType.FEEDBACK for e in events)
    assert opened_views == []


async def test_without_access_everyone_may_act_anywhere(store_url: str) -> None:
    async with slack_rig(store_url) as rig:
        incident_id = await rig.alert("g1", "a")
        await rig.card_ts(incident_id)
        resolved = await command(rig, f"resolve {incident_id}", "U0MALLORY", DM)
        status = await command(rig, f"status {incident_id}", "U0MALLORY", DM)

    assert "You resolved" in resolved
    assert "HighErrorRate" in status
