"""Requests signed exactly as Slack signs them, with payloads in Slack's real shapes.

Slack signs ``v0:{X-Slack-Request-Timestamp}:{raw body}`` with HMAC-SHA256 keyed by the app's
signing secret and sends ``X-Slack-Signature: v0=<hex digest>``
(https://docs.slack.dev/authentication/verifying-requests-from-slack/).

Every builder returns ``(body_bytes, headers)`` ready to POST to the bot (Starlette
``TestClient``, httpx, aiohttp...). ``stale=True`` dates the request 10 minutes back (Slack
apps refuse anything older than 5 minutes); ``forge=True`` signs with a wrong secret;
``timestamp=`` pins the clock.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any
from urllib.parse import urlencode

SIGNING_SECRET = "test-signing-secret"
TEAM_ID = "T0FIREBREAK"
TEAM_DOMAIN = "firebreak-test"
API_APP_ID = "A0FIREBREAK"
BOT_USER_ID = "U0FIREBREAK"
VERIFICATION_TOKEN = "deprecated-verification-token"
STALE_AGE_S = 600

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"

_ids = itertools.count(1)

Signed = tuple[bytes, dict[str, str]]


def signature(secret: str, timestamp: int | str, body: bytes | str) -> str:
    """``v0=<hex>`` for this body and timestamp, as Slack computes it."""
    raw = body if isinstance(body, bytes) else body.encode("utf-8")
    base = b"v0:" + str(timestamp).encode("ascii") + b":" + raw
    return "v0=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()


def signed_headers(
    body: bytes,
    *,
    secret: str = SIGNING_SECRET,
    content_type: str = JSON,
    timestamp: int | None = None,
    stale: bool = False,
    forge: bool = False,
    retry_num: int | None = None,
    retry_reason: str = "http_timeout",
) -> dict[str, str]:
    """The headers Slack sends with ``body``. ``retry_num`` adds Slack's retry headers."""
    ts = int(time.time()) if timestamp is None else timestamp
    if stale:
        ts -= STALE_AGE_S
    key = secret + "-forged" if forge else secret
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": signature(key, ts, body),
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
    }
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = retry_reason
    return headers


def sign(
    body: bytes | str,
    *,
    secret: str = SIGNING_SECRET,
    content_type: str = JSON,
    **options: Any,
) -> Signed:
    """Sign an arbitrary body (options as in ``signed_headers``)."""
    raw = body if isinstance(body, bytes) else body.encode("utf-8")
    return raw, signed_headers(raw, secret=secret, content_type=content_type, **options)


def _trigger_id() -> str:
    n = next(_ids)
    return f"{1000000000 + n}.{2000000000 + n}.{n:032x}"


def _form(fields: dict[str, Any]) -> bytes:
    return urlencode(fields).encode("utf-8")


SIGNING = frozenset({"secret", "stale", "forge", "timestamp", "retry_num"})


def _split(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A request builder's keywords: those for ``signed_headers``, then the payload's."""
    signing = {key: value for key, value in options.items() if key in SIGNING}
    return signing, {key: value for key, value in options.items() if key not in SIGNING}


def _interaction(payload: dict[str, Any], signing: dict[str, Any]) -> Signed:
    """Interactivity requests carry their JSON in the form field ``payload``."""
    body = _form({"payload": json.dumps(payload, separators=(",", ":"))})
    return sign(body, content_type=FORM, **signing)


# ---------------------------------------------------------------------- slash command


def slash_command_payload(
    text: str = "",
    *,
    command: str = "/incident",
    user_id: str = "U0ALICE",
    user_name: str = "alice",
    channel_id: str = "C0INCIDENTS",
    channel_name: str = "incidents",
    response_url: str = "https://hooks.slack.com/commands/T0FIREBREAK/1/abc",
    trigger_id: str | None = None,
    team_id: str = TEAM_ID,
) -> dict[str, str]:
    """The form fields of a slash command request."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": API_APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id or _trigger_id(),
    }


def slash_command(text: str = "", **options: Any) -> Signed:
    """A signed, form-encoded slash command; ``options`` as in ``signed_headers`` (signing)
    and ``slash_command_payload`` (the rest)."""
    signing, fields = _split(options)
    return sign(_form(slash_command_payload(text, **fields)), content_type=FORM, **signing)


# ---------------------------------------------------------------------- block_actions


def block_actions_payload(
    action_id: str,
    value: str,
    *,
    block_id: str = "incident_actions",
    button_text: str = "Button",
    user_id: str = "U0ALICE",
    user_name: str = "alice",
    channel_id: str = "C0INCIDENTS",
    channel_name: str = "incidents",
    message_ts: str = "1732290000.000100",
    message: dict[str, Any] | None = None,
    is_ephemeral: bool = False,
    response_url: str = "https://hooks.slack.com/actions/T0FIREBREAK/1/abc",
    trigger_id: str | None = None,
    team_id: str = TEAM_ID,
) -> dict[str, Any]:
    """The JSON of a ``block_actions`` interaction: a button clicked on a message."""
    action_ts = f"{time.time():.6f}"
    msg = message or {
        "type": "message",
        "user": BOT_USER_ID,
        "bot_id": "B0FIREBREAK",
        "app_id": API_APP_ID,
        "team": team_id,
        "text": "incident card",
        "ts": message_ts,
        "blocks": [],
    }
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": API_APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": is_ephemeral,
        },
        "trigger_id": trigger_id or _trigger_id(),
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_name},
        "message": msg,
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "text": {"type": "plain_text", "text": button_text, "emoji": True},
                "value": value,
                "type": "button",
                "action_ts": action_ts,
            }
        ],
    }


def block_actions(action_id: str, value: str, **options: Any) -> Signed:
    """A signed interactivity request: form field ``payload`` holding the JSON."""
    signing, fields = _split(options)
    return _interaction(block_actions_payload(action_id, value, **fields), signing)


# ---------------------------------------------------------------------- view_submission


def view_submission_payload(
    view: dict[str, Any],
    values: dict[str, dict[str, str | None]],
    *,
    view_id: str = "V00000001",
    user_id: str = "U0ALICE",
    user_name: str = "alice",
    team_id: str = TEAM_ID,
) -> dict[str, Any]:
    """The JSON of a ``view_submission``: the modal ``view`` as it was opened (``views.open``'s
    ``view``), submitted with ``values`` (block id -> action id -> the typed text)."""
    state = {
        block: {
            action: {"type": "plain_text_input", "value": text} for action, text in fields.items()
        }
        for block, fields in values.items()
    }
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": API_APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": _trigger_id(),
        "view": {
            "id": view_id,
            "team_id": team_id,
            "type": view.get("type", "modal"),
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": state},
            "hash": f"{int(time.time())}.{next(_ids):08x}",
            "title": view.get("title"),
            "clear_on_close": False,
            "notify_on_close": False,
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": API_APP_ID,
            "external_id": "",
            "app_installed_team_id": team_id,
            "bot_id": "B0FIREBREAK",
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def view_submission(
    view: dict[str, Any], values: dict[str, dict[str, str | None]], **options: Any
) -> Signed:
    """A signed ``view_submission`` (form field ``payload``, as Slack sends it)."""
    signing, fields = _split(options)
    return _interaction(view_submission_payload(view, values, **fields), signing)


# ---------------------------------------------------------------------- Events API


def app_mention_payload(
    text: str,
    *,
    user_id: str = "U0ALICE",
    channel_id: str = "C0INCIDENTS",
    thread_ts: str | None = None,
    ts: str | None = None,
    event_id: str | None = None,
    team_id: str = TEAM_ID,
    bot_user_id: str = BOT_USER_ID,
) -> dict[str, Any]:
    """An ``event_callback`` carrying an ``app_mention`` (``text`` should hold ``<@BOT>``)."""
    now = time.time()
    ts = ts or f"{now:.6f}"
    event: dict[str, Any] = {
        "type": "app_mention",
        "user": user_id,
        "text": text,
        "ts": ts,
        "team": team_id,
        "channel": channel_id,
        "event_ts": ts,
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    return event_callback_payload(event, event_id=event_id, team_id=team_id, user_id=bot_user_id)


def event_callback_payload(
    event: dict[str, Any],
    *,
    event_id: str | None = None,
    team_id: str = TEAM_ID,
    user_id: str = BOT_USER_ID,
) -> dict[str, Any]:
    """Wrap any event in the Events API envelope."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "api_app_id": API_APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_ids):010d}",
        "event_time": int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-{next(_ids):016x}",
    }


def app_mention(text: str, **options: Any) -> Signed:
    """A signed Events API ``app_mention``; ``retry_num`` adds Slack's retry headers."""
    signing, fields = _split(options)
    return sign(json.dumps(app_mention_payload(text, **fields)), **signing)


def event_callback(event: dict[str, Any], **options: Any) -> Signed:
    """A signed Events API request wrapping any ``event``."""
    signing, fields = _split(options)
    return sign(json.dumps(event_callback_payload(event, **fields)), **signing)


def url_verification(
    challenge: str = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", **signing: Any
) -> Signed:
    """The handshake Slack sends when the Events request URL is set."""
    payload = {"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"}
    return sign(json.dumps(payload), **signing)


__all__ = [
    "SIGNING_SECRET",
    "app_mention",
    "app_mention_payload",
    "block_actions",
    "block_actions_payload",
    "event_callback",
    "event_callback_payload",
    "sign",
    "signature",
    "signed_headers",
    "slash_command",
    "slash_command_payload",
    "url_verification",
    "view_submission",
    "view_submission_payload",
]
