"""One timeline everywhere: what people do through the write API and the command line is said
in the incident's Slack thread, attributed, through the outbox the server delivers; what they
do in Slack is not said back to them a second time."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.bot.slack_harness import CHANNEL, FakeInvestigations, SlackRig, slack_rig
from tests.bot.test_slack_interactions import command
from tests.bot.test_slack_links import links
from tests.firebreak.test_cli import FIREBREAK
from tests.support.slack_signing import app_mention

TOKEN = "api-token-of-the-thread-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def said(rig: SlackRig, ts: str, *parts: str) -> list[str]:
    """The thread's messages holding every one of `parts`."""
    texts = [m["text"] for m in rig.slack.thread(CHANNEL, ts)]
    return [t for t in texts if all(p in t for p in parts)]


async def test_api_notes_and_actions_reach_the_thread_once(store_url: str) -> None:
    async with slack_rig(store_url, api_token=TOKEN) as rig:
        incident_id = await rig.alert("g1", "a")
        ts = await rig.card_ts(incident_id)
        base = f"/api/v1/incidents/{incident_id}"

        noted = await rig.client.post(
            f"{base}/notes",
            json={"by": "alice", "text": "rolled back <!channel> v2.4.1"},
            headers=AUTH,
        )
        acked = await rig.client.post(f"{base}/acknowledge", json={"by": "U0BOB"}, headers=AUTH)
        again = await rig.client.post(f"{base}/acknowledge", json={"by": "carol"}, headers=AUTH)
        escalated = await rig.client.post(f"{base}/escalate", json={"by": "dave"}, headers=AUTH)
        assert [r.status_code for r in (noted, acked, again, escalated)] == [200] * 4

        (note,) = await rig.wait(lambda: said(rig, ts, "Note from alice: rolled back"))
        assert "&lt;!channel&gt;" in note and "via the API" in note  # said, never a ping
        await rig.wait(lambda: said(rig, ts, "Acknowledged by <@U0BOB> (via the API)"))
        await rig.wait(lambda: said(rig, ts, "Escalated by dave (via the API)"))
        await rig.idle()
        assert said(rig, ts, "carol") == []  # a repeated acknowledge changed nothing
        assert len(said(rig, ts, "Note from")) == 1


async def test_a_question_asked_in_slack_is_not_said_back_as_a_note(store_url: str) -> None:
    async with slack_rig(store_url, investigations=FakeInvestigations()) as rig:
        incident_id = await rig.alert("g1", "a")
        ts = await rig.card_ts(incident_id)
        response = await rig.post(
            app_mention("<@U0FIREBREAK> why is checkout failing?", thread_ts=ts, user_id="U0BOB")
        )
        assert response.status_code == 200
        await rig.wait(lambda: said(rig, ts, "why is checkout failing?"))
        await rig.idle()
        assert len(said(rig, ts, "why is checkout failing?")) == 1  # the answer only
        assert said(rig, ts, "Note from") == []


async def test_command_line_notes_reach_the_thread_through_the_server(
    tmp_path: Path, store_url: str
) -> None:
    """`firebreak note` writes the outbox row; the running server's drainer delivers it."""
    async with slack_rig(store_url) as rig:
        incident_id = await rig.alert("g1", "a")
        ts = await rig.card_ts(incident_id)
        config = tmp_path / "config.yaml"
        config.write_text(
            json.dumps(
                {"store": {"url": store_url}, "slack": {"mode": "console", "channel": CHANNEL}}
            )
        )

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(FIREBREAK), *args, "--config", str(config)],
                capture_output=True,
                text=True,
                timeout=60,
                env={k: v for k, v in os.environ.items() if not k.startswith("FIREBREAK")},
            )

        noted = await asyncio.to_thread(
            cli, "note", str(incident_id), "cache flushed", "--by", "erin"
        )
        acked = await asyncio.to_thread(cli, "ack", str(incident_id), "--by", "erin")
        assert noted.returncode == 0 and acked.returncode == 0, noted.stderr + acked.stderr

        (note,) = await rig.wait(lambda: said(rig, ts, "Note from erin: cache flushed"))
        assert "via the command line" in note
        await rig.wait(lambda: said(rig, ts, "Acknowledged by erin (via the command line)"))


async def test_the_pages_forms_reach_the_thread(store_url: str) -> None:
    """`/incident link` makes a link for the asker; the page's forms act as them."""
    async with slack_rig(store_url, api_token=TOKEN) as rig:
        incident_id = await rig.alert("g1", "a")
        ts = await rig.card_ts(incident_id)
        answer, _ = await command(rig, f"link {incident_id}", user_id="U0BOB")
        url = links(answer)[f"Incident #{incident_id} in Firebreak"]
        parts = urlsplit(url)
        async with httpx.AsyncClient(base_url=rig.app.url) as browser:
            assert (await browser.get(f"{parts.path}?{parts.query}")).status_code == 303
            page = await browser.get(parts.path)
            (csrf,) = set(re.findall(r'name="csrf" value="([^"]+)"', page.text))
            noted = await browser.post(
                f"{parts.path}/notes", data={"csrf": csrf, "text": "db failover done"}
            )
            acked = await browser.post(f"{parts.path}/acknowledge", data={"csrf": csrf})
            assert (noted.status_code, acked.status_code) == (303, 303)

        (note,) = await rig.wait(lambda: said(rig, ts, "Note from <@U0BOB>: db failover done"))
        assert "via the incident page" in note
        await rig.wait(lambda: said(rig, ts, "Acknowledged by <@U0BOB> (via the incident page)"))
