"""Cards through the real slack-sdk client against the fake Slack API, which behaves like Slack."""

from __future__ import annotations

import json

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.models.blocks import DividerBlock
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from firebreak.bot.messages.incident import ACTION_ACK, incident_card
from firebreak.bot.messages.rca import rca_card
from firebreak.store.schemas import (
    IncidentStatus,
)
from tests.bot.messages.builders import (
    buttons,
    make_analysis,
    make_incident,
)
from tests.fakes.slack_api import FakeSlackApi

# ---------------------------------------------------------------------- through the fake Slack


async def test_card_posted_and_updated_through_real_slack_sdk():
    with FakeSlackApi(channels={"C0INCIDENTS"}) as slack:
        client = AsyncWebClient(token=slack.token, base_url=slack.base_url)
        text, blocks = incident_card(make_incident())
        posted = await client.chat_postMessage(channel="C0INCIDENTS", text=text, blocks=blocks)
        ts = posted["ts"]

        acked = make_incident(status=IncidentStatus.ACKNOWLEDGED, acknowledged_by="U0BOB")
        text, blocks = incident_card(acked)
        await client.chat_update(channel="C0INCIDENTS", ts=ts, text=text, blocks=blocks)

        assert len(slack.calls("chat.postMessage")) == 1
        assert len(slack.calls("chat.update")) == 1
        assert slack.methods_called() == ["chat.postMessage", "chat.update"]
        stored = slack.message("C0INCIDENTS", ts)
        assert ACTION_ACK not in buttons(stored["blocks"])
        assert "<@U0BOB>" in json.dumps(stored["blocks"])
        assert slack.last_call("chat.update").headers["Authorization"] == f"Bearer {slack.token}"

        rca_text, rca_blocks = rca_card(acked, make_analysis())
        reply = await client.chat_postMessage(
            channel="C0INCIDENTS", thread_ts=ts, text=rca_text, blocks=rca_blocks
        )
        assert [m["ts"] for m in slack.thread("C0INCIDENTS", ts)] == [reply["ts"]]


async def test_fake_ts_are_unique_and_increasing():
    with FakeSlackApi() as slack:
        client = slack.client()
        stamps = [
            (await client.chat_postMessage(channel="C1", text=str(i)))["ts"] for i in range(5)
        ]
        assert stamps[0] == "1732290000.000100"
        assert len(set(stamps)) == 5
        assert stamps == sorted(stamps, key=lambda s: tuple(map(int, s.split("."))))


async def test_rate_limit_is_retried_after_retry_after():
    with FakeSlackApi() as slack:
        slack.rate_limit("chat.postMessage", times=1, retry_after=0)
        client = AsyncWebClient(
            token=slack.token,
            base_url=slack.base_url,
            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
        )
        response = await client.chat_postMessage(channel="C1", text="hello")
        assert response["ok"]
        first, second = slack.calls("chat.postMessage")
        assert first.status == 429 and first.error == "ratelimited"
        assert second.ok and second.params["text"] == "hello"
        assert len(slack.messages("C1")) == 1


async def test_rate_limit_without_retry_handler_surfaces_retry_after():
    with FakeSlackApi() as slack:
        slack.rate_limit("chat.update", times=2, retry_after=30)
        client = slack.client()
        with pytest.raises(SlackApiError) as caught:
            await client.chat_update(channel="C1", ts="1.1", text="x")
        assert caught.value.response.status_code == 429
        assert caught.value.response.headers["retry-after"] in ("30", ["30"])


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing:UserWarning")
async def test_fake_validates_like_slack():
    with FakeSlackApi(channels={"C1"}) as slack:
        client = slack.client()

        async def error_of(call) -> str:
            with pytest.raises(SlackApiError) as caught:
                await call
            return caught.value.response["error"]

        assert await error_of(client.chat_update(channel="C1", ts="9.9", text="x")) == (
            "message_not_found"
        )
        many = [DividerBlock() for _ in range(51)]
        assert await error_of(client.chat_postMessage(channel="C1", text="x", blocks=many)) == (
            "invalid_blocks"
        )
        assert await error_of(client.chat_postMessage(channel="C1")) == "no_text"
        assert await error_of(client.chat_postMessage(channel="C9", text="x")) == (
            "channel_not_found"
        )
        bad = AsyncWebClient(token="xoxb-wrong", base_url=slack.base_url)
        assert await error_of(bad.auth_test()) == "invalid_auth"
        nobody = AsyncWebClient(token=None, base_url=slack.base_url)
        assert await error_of(nobody.auth_test()) == "not_authed"

        slack.api_error("chat.postMessage", "is_archived")
        assert await error_of(client.chat_postMessage(channel="C1", text="x")) == "is_archived"
        slack.http_error("*", status=500)
        with pytest.raises(SlackApiError) as caught:
            await client.auth_test()
        assert caught.value.response.status_code == 500
        slack.outage = True
        with pytest.raises(SlackApiError) as caught:
            await client.chat_postMessage(channel="C1", text="x")
        assert caught.value.response.status_code == 503
        slack.outage = False
        assert (await client.chat_postMessage(channel="C1", text="back"))["ok"]


async def test_fake_form_encoded_and_other_methods():
    with FakeSlackApi() as slack:
        client = slack.client()
        posted = await client.api_call(
            "chat.postMessage",
            data={"channel": "C1", "text": "form", "blocks": json.dumps([{"type": "divider"}])},
        )
        assert slack.last_call("chat.postMessage").params["blocks"] == [{"type": "divider"}]
        assert slack.last_call("chat.postMessage").content_type == (
            "application/x-www-form-urlencoded"
        )
        link = await client.chat_getPermalink(channel="C1", message_ts=posted["ts"])
        assert link["permalink"].endswith("/archives/C1/p1732290000000100")
        dm = await client.conversations_open(users="U0ALICE")
        assert dm["channel"]["id"].startswith("D")
        assert (await client.conversations_open(users="U0ALICE"))["channel"] == dm["channel"]
        slack.add_user("U0ALICE", "alice", real_name="Alice Liddell")
        assert (await client.users_info(user="U0ALICE"))["user"]["real_name"] == "Alice Liddell"
        eph = await client.chat_postEphemeral(channel="C1", user="U0ALICE", text="only you")
        assert eph["message_ts"]
        auth = await client.auth_test()
        assert auth["user_id"] == slack.bot_user_id

        url = slack.response_url("abc")
        response = await AsyncWebhookClient(url).send(text="done", replace_original=False)
        assert response.status_code == 200
        (recorded,) = slack.responses("abc")
        assert recorded.params == {"text": "done", "replace_original": False}
