"""`firebreak slack-manifest`: the Slack app manifest (YAML) for this configuration."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import AnyHttpUrl

from firebreak.bot.config import SlackConfig

EVENTS_PATH = "/slack/events"
BOT_SCOPES = [
    "app_mentions:read",
    "channels:history",  # an earlier card looked for by its metadata (never posted twice)
    "chat:write",
    "chat:write.public",
    "commands",
    "files:write",  # the PNG chart in the RCA's thread (files_upload_v2)
    "groups:history",  # ... also when the card went to a private channel (routing)
    "im:write",
    "users:read",
    "users:read.email",  # on-call people given as e-mail addresses (users.lookupByEmail)
    "usergroups:read",  # responders and approvers named by user group (usergroups.users.list)
]
BOT_EVENTS = ["app_mention"]


def manifest(
    slack: SlackConfig, public_url: AnyHttpUrl, *, name: str = "Firebreak"
) -> dict[str, Any]:
    socket = slack.mode == "socket"
    url = str(public_url).rstrip("/") + EVENTS_PATH
    command: dict[str, Any] = {
        "command": slack.command,
        "description": "Incidents: list, status, ack, escalate, resolve, investigate, declare",
        "usage_hint": "help | list | status ID | ack ID | declare TITLE",
        "should_escape": False,
    }
    events: dict[str, Any] = {"bot_events": list(BOT_EVENTS)}
    interactivity: dict[str, Any] = {"is_enabled": True}
    if not socket:  # Socket Mode apps receive everything over the socket instead
        command["url"] = url
        events["request_url"] = url
        interactivity["request_url"] = url
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": name,
            "description": "Incident cards, root-cause analysis and escalation in Slack.",
            "background_color": "#b33a3a",
        },
        "features": {
            "bot_user": {"display_name": name.lower(), "always_online": True},
            "slash_commands": [command],
        },
        "oauth_config": {"scopes": {"bot": list(BOT_SCOPES)}},
        "settings": {
            "event_subscriptions": events,
            "interactivity": interactivity,
            "org_deploy_enabled": False,
            "socket_mode_enabled": socket,
            "token_rotation_enabled": False,
        },
    }


LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


def unreachable_url(slack: SlackConfig, public_url: AnyHttpUrl) -> str | None:
    """Why Slack could not call the manifest's URL, if it could not: the default
    `server.public_url` is this machine, which only Socket Mode can do without."""
    if slack.mode == "socket" or public_url.host not in LOCAL_HOSTS:
        return None
    return (
        f"server.public_url is {public_url}, which Slack cannot reach: set it to "
        "the HTTPS address Slack should call, or use slack.mode: socket"
    )


def manifest_yaml(slack: SlackConfig, public_url: AnyHttpUrl) -> str:
    return yaml.safe_dump(manifest(slack, public_url), sort_keys=False, allow_unicode=True)
