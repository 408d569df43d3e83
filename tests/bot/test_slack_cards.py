"""The incident card: posted once when an incident opens, updated in place ever after."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from firebreak.bot.console import render_text
from firebreak.bot.messages.incident import ACTION_ACK, INCIDENT_ACTIONS_BLOCK
from firebreak.incidents.notices import RcaReady, YouArePaged
from tests.bot.slack_harness import CHANNEL, FAST, FakeInvestigations, slack_rig
from tests.support.analyses import make_analysis
from tests.support.slack_signing import block_actions


def _text_of(message: dict) -> str:
    return render_text(message.get("blocks") or [])


async def test_card_posted_before_any_investigation_then_updated_never_reposted(
    store_url: str,
) -> None:
    investigations = FakeInvestigations()
    async with slack_rig(store_url, investigations=investigations) as rig:
        incident_id = await rig.alert("g1", "a")
        ts = await rig.card_ts(incident_id)
        await rig.idle()
        (post,) = rig.card_posts()
        assert post.params["channel"] == CHANNEL
        card = rig.slack.message(CHANNEL, ts)
        assert f"#{incident_id}" in card["text"]
        assert "Alerts: 1" in _text_of(card)
        assert [b.get("block_id") for b in card["blocks"]].count(INCIDENT_ACTIONS_BLOCK) == 1

        # more alerts join the group: the same card shows the count and lists them
        await rig.alert("g1", "a", "b", "c")
        await rig.idle()
        card = rig.slack.message(CHANNEL, ts)
        assert "Alerts: 3" in _text_of(card)
        assert "checkout-b:8080" in _text_of(card) and "checkout-c:8080" in _text_of(card)

        # acknowledged from Slack, then resolved by Alertmanager
        response = await rig.post(
            block_actions(ACTION_ACK, str(incident_id), message_ts=ts, user_id="U0BOB")
        )
        assert response.status_code == 200
        assert "@U0BOB" in await rig.card_text(ts, "Status: 👀 Acknowledged")
        card = rig.slack.message(CHANNEL, ts)
        action_ids = [
            e["action_id"]
            for b in card["blocks"]
            if b.get("block_id") == INCIDENT_ACTIONS_BLOCK
            for e in b["elements"]
        ]
        assert ACTION_ACK not in action_ids

        await rig.alert("g1", "a", "b", "c", status="resolved")
        await rig.card_text(ts, "Status: ✅ Resolved")
        await rig.idle()

        assert len(rig.card_posts()) == 1  # never re-posted
        assert len(rig.slack.calls("chat.update", ok=True)) >= 3
        assert all(c.params["ts"] == ts for c in rig.slack.calls("chat.update"))
        thread = rig.slack.thread(CHANNEL, ts)
        assert any("resolved" in m["text"] for m in thread)
        assert investigations.requests and investigations.requests[0][0] == incident_id


async def test_alert_refreshes_take_turns_and_a_person_never_waits(store_url: str) -> None:
    """A storm over many groups: cards showing new alerts are refreshed in turns (here one
    every 4 s), never all at once; an acknowledgement is shown at once, whatever the turns."""
    settings = replace(FAST, card_interval_s=0.0, routine_cards_per_minute=15)
    async with slack_rig(store_url, settings=settings) as rig:
        ids = [await rig.alert(f"g{n}", "a") for n in range(3)]
        cards_ts = [await rig.card_ts(incident_id) for incident_id in ids]
        await rig.idle()
        began = time.time()
        for n in range(3):
            await rig.alert(f"g{n}", "a", "b")  # routine: the third one's turn is 8 s away
        response = await rig.post(
            block_actions(ACTION_ACK, str(ids[2]), message_ts=cards_ts[2], user_id="U0BOB")
        )
        assert response.status_code == 200
        await rig.card_text(cards_ts[2], "Status: 👀 Acknowledged", within=10)
        acknowledged_after = time.time() - began
        await rig.card_text(cards_ts[1], "Alerts: 2", within=10)

        updates: dict[str, list[float]] = {}
        for ts in cards_ts:
            updates[ts] = [c.at for c in rig.slack.calls("chat.update") if c.params["ts"] == ts]
        assert acknowledged_after < 3.0, "a person's action waited for the routine turns"
        assert "Alerts: 2" in _text_of(rig.slack.message(CHANNEL, cards_ts[2]))
        assert updates[cards_ts[1]][0] - updates[cards_ts[0]][0] >= 3.0, "no turns were taken"


async def test_card_goes_out_before_the_investigation_finishes(store_url: str) -> None:
    investigations = FakeInvestigations(run_for_s=60)
    async with slack_rig(store_url, investigations=investigations) as rig:
        incident_id = await rig.alert("g1", "a")
        await rig.card_ts(incident_id, within=3)
        assert not investigations.tasks[incident_id].done()  # still "investigating"


async def test_rca_reply_goes_into_the_card_thread(store_url: str) -> None:
    async with slack_rig(store_url) as rig:
        incident_id = await rig.alert("g1", "a")
        async with rig.runtime.engine.connect() as conn:
            from firebreak.store import incidents

            incident = await incidents.get_incident(conn, incident_id)
        assert incident is not None
        analysis = make_analysis(root_cause="A bad deploy of checkout 1.2.3 broke the pool.")
        await rig.save_analysis(incident_id, "run-1", analysis)
        rig.outbox.tell(incident_id, RcaReady(run_id="run-1"))  # rendered when delivered
        ts = await rig.card_ts(incident_id)
        await rig.idle()
        (reply,) = rig.slack.thread(CHANNEL, ts)
        assert "bad deploy" in reply["text"] and reply["blocks"]
        assert len(rig.card_posts()) == 1


@pytest.mark.parametrize("mode", ["http"])
async def test_dm_opens_a_conversation(store_url: str, mode: str) -> None:
    async with slack_rig(store_url, mode=mode) as rig:
        rig.outbox.tell_user("U0ONCALL1", YouArePaged(incident_id=1, level=1, title="disk full"))
        await rig.idle()
        (opened,) = rig.slack.calls("conversations.open", ok=True)
        assert opened.params["users"] == "U0ONCALL1"
        (post,) = rig.slack.calls("chat.postMessage", ok=True)
        assert post.params["channel"].startswith("D") and "paged" in post.params["text"]
