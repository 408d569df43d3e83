"""The signing helpers sign as Slack does, and their payloads are what Bolt expects."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

from . import slack_signing as ss

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def test_known_answer_from_slack_docs():
    # The worked example of https://docs.slack.dev/authentication/verifying-requests-from-slack/
    body = (
        "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
        "&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner"
        "&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
        "commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    assert ss.signature(SECRET, 1531420618, body) == (
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


BUILDERS = {
    "slash_command": lambda **o: ss.slash_command("list", secret=SECRET, **o),
    "block_actions": lambda **o: ss.block_actions("incident_ack", "7", secret=SECRET, **o),
    "app_mention": lambda **o: ss.app_mention("<@U0FIREBREAK> why?", secret=SECRET, **o),
    "event_callback": lambda **o: ss.event_callback(
        {"type": "app_home_opened"}, secret=SECRET, **o
    ),
    "url_verification": lambda **o: ss.url_verification(secret=SECRET, **o),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_slack_sdk_verifier_accepts_signed_requests(name):
    body, headers = BUILDERS[name]()
    assert isinstance(body, bytes)
    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid_request(body, headers)
    assert headers["X-Slack-Signature"].startswith("v0=")
    assert len(headers["X-Slack-Signature"]) == 3 + 64


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_stale_forged_and_tampered_requests_are_refused(name):
    verifier = SignatureVerifier(SECRET)
    body, headers = BUILDERS[name](stale=True)
    assert not verifier.is_valid_request(body, headers)
    body, headers = BUILDERS[name](forge=True)
    assert not verifier.is_valid_request(body, headers)
    body, headers = BUILDERS[name]()
    assert not verifier.is_valid_request(body + b" ", headers)
    assert not SignatureVerifier("another-secret").is_valid_request(body, headers)


def test_pinned_timestamp_is_signed_verbatim():
    body, headers = ss.slash_command("help", secret=SECRET, timestamp=1531420618)
    assert headers["X-Slack-Request-Timestamp"] == "1531420618"
    assert headers["X-Slack-Signature"] == ss.signature(SECRET, 1531420618, body)


def test_payload_shapes():
    body, headers = ss.slash_command("ack 7", response_url="http://x/response/1")
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
    for key in (
        "token team_id team_domain channel_id channel_name user_id user_name command text "
        "api_app_id response_url trigger_id"
    ).split():
        assert key in form, key
    assert form["text"] == "ack 7" and form["command"] == "/incident"

    body, headers = ss.block_actions("incident_ack", "7", message_ts="1.000100")
    payload = json.loads(parse_qs(body.decode())["payload"][0])
    assert payload["type"] == "block_actions"
    assert payload["container"] == {
        "type": "message",
        "message_ts": "1.000100",
        "channel_id": "C0INCIDENTS",
        "is_ephemeral": False,
    }
    assert set(payload["user"]) == {"id", "username", "name", "team_id"}
    (action,) = payload["actions"]
    assert action["action_id"] == "incident_ack" and action["value"] == "7"
    assert action["type"] == "button"

    body, headers = ss.app_mention("<@U0FIREBREAK> hi", thread_ts="1.000100", event_id="Ev1")
    envelope = json.loads(body)
    assert envelope["type"] == "event_callback" and envelope["event_id"] == "Ev1"
    assert envelope["event"]["type"] == "app_mention"
    assert envelope["event"]["thread_ts"] == "1.000100"
    assert envelope["authorizations"][0]["user_id"] == "U0FIREBREAK"

    _, headers = ss.app_mention("x", retry_num=1)
    assert headers["X-Slack-Retry-Num"] == "1"


async def _authorize(**_kwargs) -> AuthorizeResult:
    return AuthorizeResult(
        enterprise_id=None,
        team_id=ss.TEAM_ID,
        bot_token="xoxb-test-token",
        bot_user_id=ss.BOT_USER_ID,
        bot_id="B0FIREBREAK",
    )


def _app(seen: list) -> AsyncApp:
    app = AsyncApp(
        signing_secret=ss.SIGNING_SECRET, authorize=_authorize, process_before_response=True
    )

    @app.command("/incident")
    async def on_command(ack, command):
        await ack()
        seen.append(("command", command["text"], command["user_id"]))

    @app.action("incident_ack")
    async def on_ack(ack, body, action):
        await ack()
        seen.append(("action", action["value"], body["container"]["message_ts"]))

    @app.event("app_mention")
    async def on_mention(event):
        seen.append(("mention", event["text"], event.get("thread_ts")))

    return app


async def _dispatch(app: AsyncApp, signed: tuple[bytes, dict[str, str]]):
    body, headers = signed
    return await app.async_dispatch(AsyncBoltRequest(body=body.decode(), headers=headers))


async def test_bolt_accepts_and_routes_the_payloads():
    seen: list = []
    app = _app(seen)
    assert (await _dispatch(app, ss.slash_command("status 7"))).status == 200
    assert (await _dispatch(app, ss.block_actions("incident_ack", "7", message_ts="5.1"))).status
    assert (await _dispatch(app, ss.app_mention("<@U0FIREBREAK> why", thread_ts="5.1"))).status
    assert seen == [
        ("command", "status 7", "U0ALICE"),
        ("action", "7", "5.1"),
        ("mention", "<@U0FIREBREAK> why", "5.1"),
    ]
    response = await _dispatch(app, ss.url_verification("chal"))
    assert response.status == 200 and "chal" in response.body


@pytest.mark.parametrize("option", ["stale", "forge"])
async def test_bolt_refuses_stale_and_forged_requests(option):
    seen: list = []
    app = _app(seen)
    response = await _dispatch(app, ss.slash_command("list", **{option: True}))
    assert response.status == 401
    assert seen == []
