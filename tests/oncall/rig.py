"""The real app with the real escalation, the Slack outbox and Bolt handlers, talking to the
fake Slack server; only the investigations are a double (they are another component's)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from firebreak.bot.console import render_text
from firebreak.bot.slack_app import SlackOptions
from firebreak.components import Parts
from firebreak.incidents.ports import NoInvestigations
from tests.bot.slack_harness import FAST, slack_secrets
from tests.conftest import make_config
from tests.fakes.slack_api import FakeSlackApi
from tests.support.app import RunningApp, run_app
from tests.support.payloads import alert, group
from tests.support.slack_signing import block_actions, slash_command
from tests.support.waiting import eventually

CHANNEL = "C0INCIDENTS"


def local_start(after: timedelta, shift: timedelta = timedelta(hours=1)) -> str:
    """A rotation `start` (UTC wall clock) whose first handover is `after` from now."""
    return (datetime.now(UTC) + after - shift).replace(tzinfo=None).isoformat()


def schedule(start: str, users: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "name": "payments-primary",
        "rotation": {"users": users, "start": start, "shift_hours": 1},
        **extra,
    }


def policy(*levels: tuple[list[str], float], **extra: Any) -> dict[str, Any]:
    return {
        "name": extra.pop("name", "payments"),
        "match": extra.pop("match", {}),
        "levels": [{"notify": notify, "timeout_s": timeout} for notify, timeout in levels],
    }


@asynccontextmanager
async def oncall_app(
    store_url: str, slack: FakeSlackApi, **sections: Any
) -> AsyncIterator[RunningApp]:
    config = make_config(
        store_url,
        slack={"mode": "http", "api_base_url": slack.base_url, "channel": CHANNEL},
        **sections,
    )
    parts = Parts(slack=SlackOptions(outbox=FAST), investigations=NoInvestigations())
    async with run_app(config, slack_secrets(), parts) as app:
        yield app


async def open_incident(
    app: RunningApp, key: str = "g1", *, labels_key: bool = False, **labels: Any
) -> int:
    """An Alertmanager notification; with `labels_key` the group key is shaped like a real
    one (`{}:{alertname="…"}`), so its group labels can be read back from it."""
    payload = group(key, [alert("a", **labels)])
    if labels_key:
        name = payload["groupLabels"]["alertname"]
        payload["groupKey"] = "{}:{alertname=" + f'"{name}"' + "}"
    response = await app.client.post("/webhooks/alertmanager", json=payload)
    assert response.status_code == 200, response.text
    return int(response.json()["incident_id"])


async def events(app: RunningApp, incident_id: int, kind: str, count: int = 1) -> list[dict]:
    async def enough() -> list[dict] | None:
        response = await app.client.get(f"/api/v1/incidents/{incident_id}/timeline")
        found = [e for e in response.json() if e["type"] == kind]
        return found if len(found) >= count else None

    return await eventually(enough, within=20)


async def card(app: RunningApp, slack: FakeSlackApi, incident_id: int) -> tuple[str, str]:
    """(channel, ts) of the incident's card once it is posted."""

    async def posted() -> dict | None:
        found = (await app.client.get(f"/api/v1/incidents/{incident_id}")).json()["slack"]
        return found if found.get("ts") else None

    ref = await eventually(posted, within=10)
    return ref["channel"], ref["ts"]


async def card_text(slack: FakeSlackApi, channel: str, ts: str, contains: str) -> str:
    async def shows() -> str | None:
        text = render_text(slack.message(channel, ts).get("blocks") or [])
        return text if contains in text else None

    try:
        return await eventually(shows, within=10)
    except AssertionError:
        last = render_text(slack.message(channel, ts).get("blocks") or [])
        raise AssertionError(f"card never showed {contains!r}; last:\n{last}") from None


def dms(slack: FakeSlackApi, user: str) -> list[str]:
    """The texts of the DMs the bot sent `user`, oldest first."""
    channels = {
        call.response["channel"]["id"]
        for call in slack.calls("conversations.open", ok=True)
        if call.params.get("users") == user
    }
    return [m["text"] for channel in channels for m in slack.messages(channel)]


async def wait_dms(slack: FakeSlackApi, user: str, count: int = 1) -> list[str]:
    async def enough() -> list[str] | None:
        found = dms(slack, user)
        return found if len(found) >= count else None

    return await eventually(enough, within=20)


async def command(app: RunningApp, slack: FakeSlackApi, text: str, **fields: Any) -> str:
    """A signed `/incident …`; the text it answers (at once, or through response_url)."""
    key = f"cmd-{len(slack.responses())}-{abs(hash(text))}"
    body, headers = slash_command(text, response_url=slack.response_url(key), **fields)
    response = await app.client.post("/slack/events", content=body, headers=headers)
    assert response.status_code == 200, response.text
    answer = response.json().get("text", "") if response.content else ""
    if "Working on it" not in answer:
        return answer
    replies = await eventually(lambda: _responses(slack, key), within=20)
    return replies[0].params["text"]


async def click(
    app: RunningApp, slack: FakeSlackApi, action_id: str, value: str, **fields: Any
) -> str:
    """A signed button click; the ephemeral answer it gets through response_url."""
    key = f"click-{len(slack.responses())}-{action_id}"
    body, headers = block_actions(action_id, value, response_url=slack.response_url(key), **fields)
    response = await app.client.post("/slack/events", content=body, headers=headers)
    assert response.status_code == 200, response.text
    replies = await eventually(lambda: _responses(slack, key), within=20)
    return replies[0].params["text"]


async def _responses(slack: FakeSlackApi, key: str) -> list[Any]:
    await asyncio.sleep(0)
    return slack.responses(key)


async def get_json(client: httpx.AsyncClient, path: str) -> Any:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return response.json()
