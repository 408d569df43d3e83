"""Buttons, the slash command and thread questions, signed as Slack signs them."""

from __future__ import annotations

import json
import re

from firebreak.bot.console import render_text
from firebreak.bot.messages.incident import (
    ACTION_ACK,
    ACTION_ESCALATE,
    ACTION_INVESTIGATE,
    ACTION_RESOLVE,
)
from firebreak.bot.messages.remediation import (
    ACTION_REMEDIATION_APPROVE,
    ACTION_REMEDIATION_APPROVE_LATER,
    ACTION_REMEDIATION_REJECT,
    REMEDIATION_ACTIONS_BLOCK,
    remediation_value,
)
from firebreak.store.schemas import EventType, IncidentStatus, RemediationProposal
from tests.bot.slack_harness import (
    CHANNEL,
    FakeEscalations,
    FakeInvestigations,
    SlackRig,
    slack_rig,
)
from tests.support.slack_signing import app_mention, block_actions, slash_command

ACK_BUDGET_S = 3.0


async def command(rig: SlackRig, text: str, **fields: object) -> tuple[dict, float]:
    response, elapsed = await rig.timed_post(
        slash_command(text, **{"response_url": rig.slack.response_url(), **fields})
    )
    assert response.status_code == 200, response.text
    return (response.json() if response.content else {}), elapsed


async def click(rig: SlackRig, action_id: str, value: str, **fields: object) -> float:
    key = f"click-{action_id}-{re.sub(r'[^A-Za-z0-9]', '', value)}"
    response, elapsed = await rig.timed_post(
        block_actions(action_id, value, response_url=rig.slack.response_url(key), **fields)
    )
    assert response.status_code == 200, response.text
    return elapsed


# ---------------------------------------------------------------------- buttons


async def test_second_ack_click_is_harmless(store_url: str) -> None:
    async with slack_rig(store_url) as rig:
        incident_id = await rig.alert("g1", "a")
        ts = await rig.card_ts(incident_id)
        for _ in range(2):
            assert await click(rig, ACTION_ACK, str(incident_id), message_ts=ts) < 3
        await rig.card_text(ts, "Status: 👀 Acknowledged")
        answers = await rig.wait(lambda: rig.slack.responses())
        assert "already acknowledged" in answers[0].params["text"]
        assert answers[0].params.get("replace_original") is False
        events = await rig.timeline(incident_id)
        acks = [e for e in events if e.type == EventType.ACKNOWLEDGED]
        assert len(acks) == 1 and acks[0].actor == "U0ALICE"
        await rig.idle()
        assert len(rig.card_posts()) == 1


async def test_buttons_ack_fast_while_an_investigation_runs(store_url: str) -> None:
    investigations = FakeInvestigations(run_for_s=60)
    async with slack_rig(store_url, investigations=investigations) as rig:
        incident_id = await rig.alert("g1", "a")
        ts = await rig.card_ts(incident_id)
        assert not investigations.tasks[incident_id].done()
        value = str(incident_id)
        elapsed = [
            await click(rig, ACTION_INVESTIGATE, value, message_ts=ts),
            await click(rig, ACTION_ESCALATE, value, message_ts=ts, user_id="U0BOB"),
            await click(rig, ACTION_RESOLVE, value, message_ts=ts, user_id="U0CAROL"),
        ]
        assert max(elapsed) < ACK_BUDGET_S, elapsed
        await rig.card_text(ts, "Status: ✅ Resolved")
        # re-investigate while one runs: refused politely, nothing new started
        answers = await rig.wait(lambda: rig.slack.responses(f"click-{ACTION_INVESTIGATE}-{value}"))
        assert "already running" in answers[0].params["text"]
        assert len(investigations.requests) == 1
        assert rig.escalations is not None and rig.escalations.calls == [(incident_id, "U0BOB")]
        paged = await rig.wait(lambda: rig.slack.responses(f"click-{ACTION_ESCALATE}-{value}"))
        assert "to level 1" in paged[0].params["text"]
        events = await rig.timeline(incident_id)
        resolved = [e for e in events if e.type == EventType.RESOLVED]
        assert [e.actor for e in resolved] == ["U0CAROL"]
        await rig.wait(lambda: any("U0CAROL" in m["text"] for m in rig.slack.thread(CHANNEL, ts)))


async def test_buttons_on_the_real_components_answer(store_url: str) -> None:
    """No doubles: escalation and investigations are the real ones (every part always runs)."""
    async with slack_rig(store_url, with_doubles=False) as rig:
        incident_id = await rig.alert("g1", "a")
        ts = await rig.card_ts(incident_id)
        await click(rig, ACTION_ESCALATE, str(incident_id), message_ts=ts)
        await click(rig, ACTION_INVESTIGATE, str(incident_id), message_ts=ts)
        answers = await rig.wait(lambda: len(rig.slack.responses()) >= 2 and rig.slack.responses())
        texts = " ".join(a.params["text"] for a in answers)
        assert "No escalation policy matches" in texts
        assert f"incident #{incident_id}" in texts and "nvestigat" in texts


async def test_remediation_buttons_call_the_investigation(store_url: str) -> None:
    investigations = FakeInvestigations()
    async with slack_rig(store_url, investigations=investigations) as rig:
        incident_id = await rig.alert("g1", "a")
        proposal = RemediationProposal(action="restart_deployment", parameters=[], reason="r")
        value = remediation_value(incident_id, "inv-1-abc", proposal)
        await click(
            rig,
            ACTION_REMEDIATION_APPROVE,
            value,
            block_id=REMEDIATION_ACTIONS_BLOCK,
            user_id="U0DAVE",
        )
        answers = await rig.wait(lambda: rig.slack.responses())
        assert answers[0].params["text"].startswith("Approved. The decision is recorded")
        assert investigations.decisions == [(incident_id, True, "U0DAVE", 0)]
        assert investigations.approvals == [("inv-1-abc", proposal.digest())]
        await click(rig, ACTION_REMEDIATION_REJECT, value, block_id=REMEDIATION_ACTIONS_BLOCK)
        await rig.wait(lambda: len(investigations.decisions) == 2)
        assert investigations.decisions[1] == (incident_id, False, "U0ALICE", 0)
        await click(
            rig,
            ACTION_REMEDIATION_APPROVE_LATER,
            value,
            block_id=REMEDIATION_ACTIONS_BLOCK,
        )
        await rig.wait(lambda: len(investigations.decisions) == 3)
        delay = rig.runtime.config.remediation.approve_later_s
        assert investigations.decisions[2] == (incident_id, True, "U0ALICE", delay)


# ---------------------------------------------------------------------- slash command


async def test_help_list_status_timeline(store_url: str) -> None:
    async with slack_rig(store_url) as rig:
        answer, elapsed = await command(rig, "help")
        assert elapsed < ACK_BUDGET_S
        assert answer["response_type"] == "ephemeral"
        for usage in ("list", "status ID", "ack ID", "declare TITLE", "timeline ID"):
            assert f"/incident {usage}" in answer["text"]

        answer, _ = await command(rig, "list")
        assert "No open incidents" in answer["text"]

        incident_id = await rig.alert("g1", "a")
        answer, _ = await command(rig, "list")
        assert f"#{incident_id}" in json.dumps(answer["blocks"])

        answer, _ = await command(rig, f"status {incident_id}")
        assert f"#{incident_id}" in answer["text"] and answer["response_type"] == "ephemeral"
        assert "Triggered" in render_text(answer["blocks"])

        answer, _ = await command(rig, f"timeline #{incident_id}")
        rendered = render_text(answer["blocks"])
        assert "INCIDENT_CREATED" in rendered and "ALERT_RECEIVED" in rendered


async def test_unknown_subcommand_and_unknown_id_get_helpful_answers(store_url: str) -> None:
    async with slack_rig(store_url) as rig:
        answer, _ = await command(rig, "frobnicate 7")
        assert "frobnicate" in answer["text"] and "/incident help" in answer["text"]
        assert answer["response_type"] == "ephemeral"
        for text in ("status 999", "ack 999", "resolve 999", "timeline 999", "status abc"):
            answer, _ = await command(rig, text)
            assert "no incident" in answer["text"].lower(), (text, answer)
            assert "/incident list" in answer["text"]
        answer, _ = await command(rig, "status")
        assert "Usage: `/incident status ID`" in answer["text"]


async def test_ack_resolve_from_the_command(store_url: str) -> None:
    async with slack_rig(store_url) as rig:
        incident_id = await rig.alert("g1", "a")
        ts = await rig.card_ts(incident_id)
        answer, _ = await command(rig, f"ack {incident_id}", user_id="U0BOB")
        assert "acknowledged" in answer["text"]
        answer, _ = await command(rig, f"ack {incident_id}")
        assert "already acknowledged by <@U0BOB>" in answer["text"]
        await rig.card_text(ts, "Status: 👀 Acknowledged")
        answer, _ = await command(rig, f"resolve {incident_id}", user_id="U0BOB")
        assert "resolved" in answer["text"]
        await rig.card_text(ts, "Status: ✅ Resolved")
        async with rig.runtime.engine.connect() as conn:
            from firebreak.store import incidents

            incident = await incidents.get_incident(conn, incident_id)
        assert incident is not None and incident.status == IncidentStatus.RESOLVED
        assert incident.acknowledged_by == "U0BOB"


async def test_declare_opens_an_incident_with_card_and_investigation(store_url: str) -> None:
    investigations = FakeInvestigations(run_for_s=60)
    async with slack_rig(store_url, investigations=investigations) as rig:
        answer, elapsed = await command(rig, "declare Checkout is down for EU users")
        assert elapsed < ACK_BUDGET_S
        assert "Declared incident #" in answer["text"]
        incident_id = int(answer["text"].split("#", 1)[1].split(":", 1)[0])
        ts = await rig.card_ts(incident_id)
        assert "Checkout is down for EU users" in rig.slack.message(CHANNEL, ts)["text"]
        assert investigations.requests[0][:2] == (incident_id, "U0ALICE")
        events = await rig.timeline(incident_id)
        assert events[0].type == EventType.INCIDENT_CREATED and events[0].actor == "U0ALICE"
        answer, _ = await command(rig, "declare")
        assert "Usage" in answer["text"]


async def test_commands_answer_fast_while_investigations_run(store_url: str) -> None:
    investigations = FakeInvestigations(run_for_s=60)
    async with slack_rig(store_url, investigations=investigations) as rig:
        incident_id = await rig.alert("g1", "a")
        await rig.card_ts(incident_id)
        timings = []
        for text in (f"investigate {incident_id}", f"escalate {incident_id}", "list"):
            answer, elapsed = await command(rig, text)
            timings.append(elapsed)
            assert answer["text"]
        assert max(timings) < ACK_BUDGET_S, timings
        assert not investigations.tasks[incident_id].done()


async def test_slow_work_is_answered_after_the_ack(store_url: str) -> None:
    escalations = FakeEscalations(delay_s=3.0)
    async with slack_rig(store_url, escalations=escalations) as rig:
        incident_id = await rig.alert("g1", "a")
        response_url = rig.slack.response_url("slow")
        answer, elapsed = await command(rig, f"escalate {incident_id}", response_url=response_url)
        assert elapsed < ACK_BUDGET_S
        assert "Working on it" in answer["text"]
        (later,) = await rig.wait(lambda: rig.slack.responses("slow"), within=10)
        assert "to level 1" in later.params["text"]
        assert later.params["response_type"] == "ephemeral"


# ---------------------------------------------------------------------- thread questions


async def test_question_in_the_incident_thread_is_answered_there(store_url: str) -> None:
    investigations = FakeInvestigations(answer_delay_s=0.5)
    async with slack_rig(store_url, investigations=investigations) as rig:
        incident_id = await rig.alert("g1", "a")
        ts = await rig.card_ts(incident_id)
        response, elapsed = await rig.timed_post(
            app_mention("<@U0FIREBREAK> why is checkout failing?", thread_ts=ts, user_id="U0BOB")
        )
        assert response.status_code == 200 and elapsed < ACK_BUDGET_S
        replies = await rig.wait(
            lambda: [m for m in rig.slack.thread(CHANNEL, ts) if "bad deploy" in m["text"]]
        )
        assert "<@U0BOB>" in replies[0]["text"]
        assert investigations.questions == [(incident_id, "why is checkout failing?", "U0BOB")]
        notes = [e for e in await rig.timeline(incident_id) if e.type == EventType.NOTE]
        assert len(notes) == 2 and all(n.actor == "U0BOB" for n in notes)
        assert "why is checkout failing?" in notes[0].message
        assert "bad deploy" in notes[1].message


async def test_mention_outside_an_incident_thread_gets_a_hint(store_url: str) -> None:
    investigations = FakeInvestigations()
    async with slack_rig(store_url, investigations=investigations) as rig:
        response = await rig.post(app_mention("<@U0FIREBREAK> hello", ts="1732290999.000100"))
        assert response.status_code == 200
        (post,) = await rig.slack.await_calls("chat.postMessage")
        assert post.params["thread_ts"] == "1732290999.000100"
        assert "incident" in post.params["text"]
        assert investigations.questions == []
