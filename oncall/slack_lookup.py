"""`lookup_email` for `OnCall` on top of a Slack Web API client (`users.lookupByEmail`).

Kept apart from `OnCall` so the composition root hands in the client it already has (token,
base URL, retry handlers) and the schedules never build a Slack client of their own. Needs the
`users:read.email` scope."""

from __future__ import annotations

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from firebreak.oncall.schedules import LookupEmail

__all__ = ["slack_email_lookup"]


def slack_email_lookup(client: AsyncWebClient) -> LookupEmail:
    """An async `email -> user id | None`: None when Slack knows no such user; other Slack
    errors (missing scope, rate limit after the client's retries) raise."""

    async def lookup_email(email: str) -> str | None:
        try:
            response = await client.users_lookupByEmail(email=email)
        except SlackApiError as exc:
            if exc.response.get("error") == "users_not_found":
                return None
            raise
        user = response.get("user") or {}
        return user.get("id") or None

    return lookup_email
