"""`/incident link ID` and `/incident list` hand out signed links to the pages: with the API
token set, the link Slack shows opens the page in a browser (a session, then the page)."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import httpx

from tests.bot.slack_harness import SlackRig, slack_rig
from tests.bot.test_slack_interactions import command

TOKEN = "api-token-of-the-link-tests"
_LINK = re.compile(r"<(http[^|>]+)\|([^>]+)>")


def links(answer: dict) -> dict[str, str]:
    """label -> URL of every link in an answer (text and blocks), as a browser gets it."""
    found = _LINK.findall(answer.get("text", "") + json.dumps(answer.get("blocks") or []))
    return {label: url.replace("&amp;", "&") for url, label in found}


async def opened(rig: SlackRig, url: str) -> httpx.Response:
    """The link followed as a browser follows it, on the running server: a new cookie jar."""
    parts = urlsplit(url)
    async with httpx.AsyncClient(base_url=rig.app.url) as browser:
        redirect = await browser.get(f"{parts.path}?{parts.query}")
        assert redirect.status_code == 303, redirect.text
        return await browser.get(redirect.headers["location"])


async def test_link_answers_the_pages_signed_link(store_url: str) -> None:
    async with slack_rig(store_url, api_token=TOKEN) as rig:
        incident_id = await rig.alert("g1", "a")
        assert (await rig.client.get(f"/incidents/{incident_id}")).status_code == 401

        answer, _ = await command(rig, f"link #{incident_id}")

        assert answer["response_type"] == "ephemeral"
        url = links(answer)[f"Incident #{incident_id} in Firebreak"]
        assert f"/incidents/{incident_id}?token=" in url
        page = await opened(rig, url)
        assert page.status_code == 200 and f"#{incident_id}" in page.text

        missing, _ = await command(rig, "link 999")
        assert "no incident" in missing["text"].lower()
        usage, _ = await command(rig, "link")
        assert "Usage: `/incident link ID`" in usage["text"]
        helped, _ = await command(rig, "help")
        assert "/incident link ID" in helped["text"]


async def test_list_ends_with_the_list_pages_link(store_url: str) -> None:
    async with slack_rig(store_url, api_token=TOKEN) as rig:
        incident_id = await rig.alert("g1", "a")
        answer, _ = await command(rig, "list")
        url = links(answer)["Every incident in Firebreak"]
        page = await opened(rig, url)
        assert page.status_code == 200 and f"/incidents/{incident_id}" in page.text


async def test_no_list_link_when_reading_is_restricted(store_url: str) -> None:
    """A list link's session opens every page; with `access.responders` a person may read only
    some incidents, so the list gives no such link."""
    async with slack_rig(store_url, api_token=TOKEN, access={"responders": ["U0ALICE"]}) as rig:
        await rig.alert("g1", "a")
        answer, _ = await command(rig, "list", user_id="U0ALICE")
        assert "Every incident in Firebreak" not in links(answer)
