"""The RCA reply's "Was this right?" over signed Slack requests: Correct records at once and the
reply says so in place; Wrong opens a form whose submission records the actual cause; a reply
that a newer analysis replaced is refused and nothing changes."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from firebreak.bot.console import render_text
from firebreak.bot.messages.feedback import (
    ACTION_FEEDBACK_CORRECT,
    ACTION_FEEDBACK_WRONG,
    CAUSE_BLOCK,
    CAUSE_INPUT,
    FEEDBACK_ACTIONS_BLOCK,
    VIEW_ACTUAL_CAUSE,
    feedback_value,
)
from firebreak.store.schemas import EventType, TimelineEventOut
from tests.bot.slack_harness import CHANNEL, SlackRig, slack_rig
from tests.support.slack_signing import block_actions, view_submission

ACK_BUDGET_S = 3.0
RUN = "inv-1-0123456789ab"


async def click(
    rig: SlackRig, action_id: str, value: str, key: str, **fields: Any
) -> tuple[float, str]:
    """A click on the RCA reply; (seconds to Slack's ack, the click's trigger_id)."""
    signed = block_actions(
        action_id,
        value,
        block_id=FEEDBACK_ACTIONS_BLOCK,
        response_url=rig.slack.response_url(key),
        **fields,
    )
    response, elapsed = await rig.timed_post(signed)
    assert response.status_code == 200, response.text
    payload = json.loads(dict(parse_qsl(signed[0].decode()))["payload"])
    return elapsed, payload["trigger_id"]


def reply_text(rig: SlackRig, ts: str) -> str:
    return render_text(rig.slack.message(CHANNEL, ts).get("blocks") or [])


async def reply_shows(rig: SlackRig, ts: str, words: str) -> str:
    return await rig.wait(lambda: (text := reply_text(rig, ts)) and words in text and text)


def feedback_of(events: list[TimelineEventOut]) -> list[TimelineEventOut]:
    return [e for e in events if e.type == EventType.FEEDBACK]


async def analysed(rig: SlackRig) -> tuple[int, str, str]:
    """An incident with its card and an RCA reply: (incident id, card ts, reply ts)."""
    incident_id = await rig.alert("g1", "a")
    card_ts = await rig.card_ts(incident_id)
    reply_ts = await rig.publish_analysis(incident_id, RUN)
    assert "Was this right?" in reply_text(rig, reply_ts)
    return incident_id, card_ts, reply_ts


async def test_correct_is_recorded_at_once_and_the_reply_says_who(store_url: str) -> None:
    async with slack_rig(store_url) as rig:
        incident_id, card_ts, reply_ts = await analysed(rig)
        value = feedback_value(incident_id, RUN)
        posts_before = len(rig.slack.calls("chat.postMessage"))

        elapsed, _ = await click(rig, ACTION_FEEDBACK_CORRECT, value, "correct")

        assert elapsed < ACK_BUDGET_S
        shown = await reply_shows(rig, reply_ts, "✅ Confirmed by @U0ALICE")
        assert "Was this right?" not in shown
        assert "[ ✅ Correct ] [ ❌ Wrong ]" in shown  # the verdict can still be changed
        await rig.card_text(card_ts, "Confirmed by @U0ALICE")
        [event] = feedback_of(await rig.timeline(incident_id))
        assert (event.actor, event.data["verdict"], event.data["run_id"]) == (
            "U0ALICE",
            "correct",
            RUN,
        )
        await rig.idle()
        assert rig.slack.responses("correct") == []  # the reply itself is the answer
        assert len(rig.slack.calls("chat.postMessage")) == posts_before  # updated, not posted

        await click(rig, ACTION_FEEDBACK_CORRECT, value, "again")
        [again] = await rig.wait(lambda: rig.slack.responses("again"))
        assert "already said that" in again.params["text"]
        assert again.params["response_type"] == "ephemeral"
        assert len(feedback_of(await rig.timeline(incident_id))) == 1


async def test_wrong_asks_for_the_actual_cause_and_records_it(store_url: str) -> None:
    async with slack_rig(store_url) as rig:
        incident_id, card_ts, reply_ts = await analysed(rig)
        value = feedback_value(incident_id, RUN)

        elapsed, trigger_id = await click(
            rig, ACTION_FEEDBACK_WRONG, value, "wrong", user_id="U0BOB"
        )

        assert elapsed < ACK_BUDGET_S
        opened = (await rig.wait(lambda: rig.slack.calls("views.open", ok=True)))[0]
        assert opened.params["trigger_id"] == trigger_id
        view = opened.params["view"]
        assert view["callback_id"] == VIEW_ACTUAL_CAUSE
        assert "What was the actual cause?" in json.dumps(view)
        assert "The v2.4.1 deploy broke checkout" in json.dumps(view)  # what it said
        assert feedback_of(await rig.timeline(incident_id)) == []  # nothing until submitted

        blank = await rig.post(
            view_submission(view, {CAUSE_BLOCK: {CAUSE_INPUT: "  "}}, user_id="U0BOB")
        )
        assert blank.json()["response_action"] == "errors"
        assert CAUSE_BLOCK in blank.json()["errors"]

        cause = "The payments DB pool was exhausted by a batch job"
        submitted, elapsed = await rig.timed_post(
            view_submission(view, {CAUSE_BLOCK: {CAUSE_INPUT: cause}}, user_id="U0BOB")
        )
        assert submitted.status_code == 200 and not submitted.content  # the form closes
        assert elapsed < ACK_BUDGET_S
        [event] = feedback_of(await rig.timeline(incident_id))
        assert (event.actor, event.data["verdict"], event.data["actual_cause"]) == (
            "U0BOB",
            "wrong",
            cause,
        )
        shown = await reply_shows(rig, reply_ts, "❌ Marked wrong by @U0BOB")
        assert f"Actual cause: _{cause}_" in shown
        await rig.card_text(card_ts, "Marked wrong by @U0BOB")
        await rig.idle()
        assert rig.slack.responses("wrong") == []


async def test_a_replaced_analysis_cannot_be_judged(store_url: str) -> None:
    async with slack_rig(store_url) as rig:
        incident_id, _, old_ts = await analysed(rig)
        old = feedback_value(incident_id, RUN)
        await click(rig, ACTION_FEEDBACK_WRONG, old, "form")  # opened before the re-run
        form = (await rig.wait(lambda: rig.slack.calls("views.open", ok=True)))[0].params["view"]
        new_ts = await rig.publish_analysis(incident_id, "inv-1-fedcba987654", "The DB pool")
        assert new_ts != old_ts
        before = reply_text(rig, old_ts)

        await click(rig, ACTION_FEEDBACK_CORRECT, old, "stale-correct")
        await click(rig, ACTION_FEEDBACK_WRONG, old, "stale-wrong")
        late = await rig.post(view_submission(form, {CAUSE_BLOCK: {CAUSE_INPUT: "a cron job"}}))

        for key in ("stale-correct", "stale-wrong"):
            [answer] = await rig.wait(lambda key=key: rig.slack.responses(key))
            assert "replaced by a newer one" in answer.params["text"]
            assert answer.params["response_type"] == "ephemeral"
        assert late.json()["response_action"] == "errors"
        assert "replaced by a newer one" in late.json()["errors"][CAUSE_BLOCK]
        assert len(rig.slack.calls("views.open")) == 1  # no form for the stale Wrong
        assert feedback_of(await rig.timeline(incident_id)) == []
        await rig.idle()
        assert reply_text(rig, old_ts) == before

        await click(
            rig,
            ACTION_FEEDBACK_CORRECT,
            feedback_value(incident_id, "inv-1-fedcba987654"),
            "new",
        )
        await reply_shows(rig, new_ts, "✅ Confirmed by @U0ALICE")
        assert len(feedback_of(await rig.timeline(incident_id))) == 1


async def test_a_malformed_value_is_answered_and_changes_nothing(store_url: str) -> None:
    async with slack_rig(store_url) as rig:
        incident_id, _, _ = await analysed(rig)
        await click(rig, ACTION_FEEDBACK_CORRECT, str(incident_id), "bad")
        [answer] = await rig.wait(lambda: rig.slack.responses("bad"))
        assert "Bad button value" in answer.params["text"]
        assert feedback_of(await rig.timeline(incident_id)) == []
