"""Untrusted text never pings anyone or forms a link in Slack.

Alert labels, notes, log lines and model output can hold `<!channel>`, `<@U…>` or a link;
every message Firebreak shows (cards, thread replies, ephemeral answers, the postmortem's
Markdown block) shows them as text. Real parts: the app under uvicorn, the Slack component
against the fake Slack, requests signed as Slack signs them; both stores.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from firebreak.incidents.notices import RcaReady
from firebreak.store.schemas import EvidenceItem
from tests.bot.slack_harness import CHANNEL, SlackRig, slack_rig
from tests.support.analyses import make_analysis
from tests.support.payloads import alert, group
from tests.support.slack_signing import app_mention, slash_command

HOSTILE = "<!channel> & <@U0BOSS> <!subteam^S0ALL> <!here> <https://evil.example|log in>"
RAW = ("<!channel>", "<@U0BOSS>", "<!subteam^S0ALL>", "<!here>", "<https://evil")
SHOWN = ("chat.postMessage", "chat.update", "chat.postEphemeral", "response_url", "views.open")


def parsed_text(value: Any) -> Iterator[str]:
    """Every string Slack parses for markup: all but `plain_text` objects (headers, button
    labels), which Slack shows verbatim and never reads a mention in."""
    if isinstance(value, dict):
        if value.get("type") == "plain_text":
            return
        for item in value.values():
            yield from parsed_text(item)
    elif isinstance(value, list):
        for item in value:
            yield from parsed_text(item)
    elif isinstance(value, str):
        yield value


def leaks(rig: SlackRig, answers: list[dict[str, Any]]) -> list[str]:
    """Every raw hostile token in what Slack was given to show, and in direct answers."""
    shown = [c.params for c in rig.slack.calls() if c.method in SHOWN]
    texts = [text for message in [*shown, *answers] for text in parsed_text(message)]
    return [raw for text in texts for raw in RAW if raw in text]


async def command(rig: SlackRig, text: str) -> dict[str, Any]:
    response = await rig.post(slash_command(text, response_url=rig.slack.response_url()))
    assert response.status_code == 200, response.text
    return response.json() if response.content else {}


async def hostile_analysis(rig: SlackRig, incident_id: int) -> None:
    """What the investigation stores from the model and the logs, then tells the thread."""
    analysis = make_analysis(
        root_cause=f"The deploy {HOSTILE}",
        reasoning=f"L1 says {HOSTILE}",
        mitigation=HOSTILE,
        prevention=HOSTILE,
        recommendation=HOSTILE,
        evidence=[EvidenceItem(ref="L1", kind="log", source="app", text=f"ERROR {HOSTILE}")],
    )
    await rig.save_analysis(incident_id, "inv-1-hostile", analysis)
    rig.runtime.notifier.tell(incident_id, RcaReady(run_id="inv-1-hostile"))


async def test_hostile_text_is_shown_never_pinging(store_url: str) -> None:
    async with slack_rig(store_url) as rig:
        payload = group("g1", [alert("a", alertname=f"Errors {HOSTILE}", service="checkout")])
        response = await rig.client.post("/webhooks/alertmanager", json=payload)
        incident_id = int(response.json()["incident_id"])
        card = await rig.card_ts(incident_id)
        await rig.runtime.incidents.add_note(incident_id, "U0BOB", f"note {HOSTILE}")
        await hostile_analysis(rig, incident_id)
        question = app_mention(f"<@U0FIREBREAK> is it {HOSTILE}?", thread_ts=card, user_id="U0BOB")
        assert (await rig.post(question)).status_code == 200
        answers = [
            await command(rig, f"{sub} {incident_id}")
            for sub in ("status", "timeline", "postmortem")
        ]
        answers.append(await command(rig, "list"))
        await rig.runtime.incidents.acknowledge(incident_id, "<!channel>")  # an API caller's `by`
        answers.append(await command(rig, f"ack {incident_id}"))
        await rig.wait(lambda: len(rig.slack.thread(CHANNEL, card)) >= 3)
        await rig.idle()
        thread = rig.slack.thread(CHANNEL, card)
        found = leaks(rig, answers)

    markdown = [b["text"] for m in thread for b in m.get("blocks") or [] if b["type"] == "markdown"]
    assert len(markdown) == 1 and "&lt;!channel&gt;" in markdown[0]
    assert found == []
    assert "already acknowledged by &lt;!channel&gt;" in answers[-1]["text"]
    everything = json.dumps(thread)
    assert "&lt;!channel&gt;" in everything and "&amp;" in everything
