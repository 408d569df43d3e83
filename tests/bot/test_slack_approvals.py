"""Approve / Reject act on the proposal shown on the message clicked, never on another one.

Real parts: the app under uvicorn with the real investigations (LangGraph, its checkpointer,
the openai client against a scripted server), the fake Slack, requests signed as Slack signs
them; both stores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from firebreak.bot.console import render_text
from firebreak.bot.messages.remediation import (
    ACTION_REMEDIATION_APPROVE,
    ACTION_REMEDIATION_REJECT,
    REMEDIATION_ACTIONS_BLOCK,
)
from firebreak.store.models import RemediationRun
from firebreak.store.schemas import EventType
from tests.agents.test_graph import RESTART, STARTS, rca, write_log_story
from tests.bot.slack_harness import CHANNEL, SlackRig, slack_rig
from tests.fakes.llm_servers import ScriptedLLMServer, answer
from tests.support.payloads import alert, group
from tests.support.slack_signing import block_actions


def proposing(service: str) -> Any:
    """The model's answer: an RCA proposing to restart `service`."""
    proposal = {
        "action": "restart_service",
        "reason": f"{service} holds a stuck connection pool",
        "parameters": [{"name": "service", "value": service}],
    }
    return answer(rca(remediation=proposal))


def sections(tmp_path: Path, llm: ScriptedLLMServer) -> dict[str, Any]:
    logs = tmp_path / "checkout.log"
    write_log_story(logs)
    return {
        "llm": {
            "provider": "openai",
            "model": "test-model",
            "base_url": llm.base_url,
            "timeout_s": 10,
            "transient_retries": 1,
        },
        "sources": {"logs": [{"type": "file", "name": "app", "path": str(logs)}]},
        "investigation": {"checkpoint_path": str(tmp_path / "checkpoints.db")},
        "remediation": {"actions": [RESTART]},
    }


async def open_incident(rig: SlackRig) -> int:
    payload = group("g1", [alert("a", starts_at=STARTS)])
    response = await rig.client.post("/webhooks/alertmanager", json=payload)
    assert response.status_code == 200, response.text
    return int(response.json()["incident_id"])


def approval_messages(rig: SlackRig, card_ts: str) -> list[dict[str, Any]]:
    """The thread's remediation messages, oldest first."""
    return [
        m
        for m in rig.slack.thread(CHANNEL, card_ts)
        if "Proposed remediation" in render_text(m.get("blocks") or [])
    ]


def approve_value(message: dict[str, Any]) -> str:
    for block in message.get("blocks") or []:
        for element in block.get("elements") or []:
            if element.get("action_id") == ACTION_REMEDIATION_APPROVE:
                return str(element["value"])
    raise AssertionError("the message has no Approve button")


async def approval_for(rig: SlackRig, card_ts: str, service: str) -> dict[str, Any]:
    """The approval message proposing to restart `service`, once it has its buttons."""

    def found() -> dict[str, Any] | None:
        for message in approval_messages(rig, card_ts):
            text = render_text(message.get("blocks") or [])
            if f"= `{service}`" in text and REMEDIATION_ACTIONS_BLOCK in json.dumps(message):
                return message
        return None

    return await rig.wait(found, within=30)


async def click(rig: SlackRig, action_id: str, value: str, ts: str, user: str = "U0ALICE") -> str:
    """Click a button of the message at `ts`; the ephemeral answer's text."""
    key = f"answer-{len(rig.slack.responses())}"
    response = await rig.post(
        block_actions(
            action_id,
            value,
            user_id=user,
            message_ts=ts,
            block_id=REMEDIATION_ACTIONS_BLOCK,
            response_url=rig.slack.response_url(key),
        )
    )
    assert response.status_code == 200, response.text
    answered = await rig.wait(lambda: rig.slack.responses(key))
    return str(answered[0].params["text"])


async def runs(rig: SlackRig) -> list[tuple[str, dict[str, str]]]:
    async with rig.runtime.engine.connect() as conn:
        rows = (await conn.execute(select(RemediationRun).order_by(RemediationRun.id))).all()
    return [(row.action, row.parameters) for row in rows]


async def proposed_twice(rig: SlackRig) -> tuple[int, str, dict[str, Any], dict[str, Any]]:
    """An incident whose first investigation proposed restarting checkout, and whose
    re-investigation proposed restarting payments: (id, card ts, first, second message)."""
    incident_id = await open_incident(rig)
    card = await rig.card_ts(incident_id)
    first = await approval_for(rig, card, "checkout")
    await rig.runtime.investigations.wait_idle()
    assert rig.runtime.investigations.request(incident_id, actor="U0ALICE", reason="again")
    second = await approval_for(rig, card, "payments")
    await rig.runtime.investigations.wait_idle()
    return incident_id, card, first, second


async def test_approving_an_older_proposal_runs_nothing_and_says_it_was_superseded(
    store_url: str, tmp_path: Path
) -> None:
    with ScriptedLLMServer("openai") as llm:
        llm.script(proposing("checkout"), proposing("payments"))
        async with slack_rig(store_url, with_doubles=False, **sections(tmp_path, llm)) as rig:
            incident_id, _card, first, second = await proposed_twice(rig)

            async def superseded() -> str | None:
                message = rig.slack.message(CHANNEL, first["ts"])
                text = render_text(message.get("blocks") or [])
                return text if "Superseded" in text else None

            old_text = await rig.wait(superseded)
            before = await rig.timeline(incident_id)
            stale = await click(rig, ACTION_REMEDIATION_APPROVE, approve_value(first), first["ts"])
            after_stale = await rig.timeline(incident_id)
            nothing_ran = await runs(rig)
            approved = await click(
                rig, ACTION_REMEDIATION_APPROVE, approve_value(second), second["ts"]
            )
            ran = await runs(rig)

    assert "superseded" in stale.lower() and "nothing was done" in stale.lower()
    assert "Approve" not in old_text  # its buttons are gone
    assert nothing_ran == []
    assert after_stale == before
    assert approved.startswith("Approved")
    assert ran == [("restart_service", {"service": "payments"})]


async def test_a_button_whose_proposal_does_not_match_is_refused(
    store_url: str, tmp_path: Path
) -> None:
    """A value naming the waiting run with another proposal's digest changes nothing."""
    with ScriptedLLMServer("openai") as llm:
        llm.script(proposing("checkout"), proposing("payments"))
        async with slack_rig(store_url, with_doubles=False, **sections(tmp_path, llm)) as rig:
            incident_id, _card, first, second = await proposed_twice(rig)
            forged = json.loads(approve_value(second))
            forged["digest"] = json.loads(approve_value(first))["digest"]
            before = await rig.timeline(incident_id)
            refused = await click(rig, ACTION_REMEDIATION_APPROVE, json.dumps(forged), second["ts"])
            after = await rig.timeline(incident_id)
            nothing_ran = await runs(rig)
            still_waiting = await click(
                rig, ACTION_REMEDIATION_REJECT, approve_value(second), second["ts"]
            )

    assert "does not match" in refused and "nothing was done" in refused.lower()
    assert after == before and nothing_ran == []
    assert still_waiting.startswith("Rejected")  # the genuine proposal was still waiting


async def test_rejecting_a_superseded_proposal_is_stale_too(store_url: str, tmp_path: Path) -> None:
    with ScriptedLLMServer("openai") as llm:
        llm.script(proposing("checkout"), proposing("payments"))
        async with slack_rig(store_url, with_doubles=False, **sections(tmp_path, llm)) as rig:
            incident_id, _card, first, _second = await proposed_twice(rig)
            stale = await click(rig, ACTION_REMEDIATION_REJECT, approve_value(first), first["ts"])
            events = await rig.timeline(incident_id)

    assert "superseded" in stale.lower()
    kinds = [e.type for e in events]
    assert EventType.REMEDIATION_REJECTED not in kinds
    assert kinds.count(EventType.REMEDIATION_PROPOSED) == 2
