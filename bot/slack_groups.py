"""Members of Slack user groups, for `access.responders` and `remediation.approvers`.

Read with `usergroups.users.list` (scope `usergroups:read`) through the Slack transport's own
client, and kept for `ttl_s`: every click and command asks who may act, and a group changes
far less often than people click. A group that cannot be read counts as its last known
members (none, if never read), and is asked again on the next check.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

log = structlog.get_logger(__name__)

GROUP_TTL_S = 60.0


class SlackGroups:
    """Implements `access.responders.GroupMembers`."""

    def __init__(self, client: Any | None, *, ttl_s: float = GROUP_TTL_S) -> None:
        self.client = client  # an AsyncWebClient with the bot token; None: no Slack (console)
        self.ttl_s = ttl_s
        self._known: dict[str, tuple[float, frozenset[str]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def members(self, group: str) -> frozenset[str]:
        async with self._locks.setdefault(group, asyncio.Lock()):  # one read per group at once
            known = self._known.get(group)
            if known is not None and time.monotonic() < known[0]:
                return known[1]
            found = await self._read(group)
            if found is None:
                return known[1] if known else frozenset()
            self._known[group] = (time.monotonic() + self.ttl_s, found)
            return found

    async def _read(self, group: str) -> frozenset[str] | None:
        if self.client is None:
            return None
        try:
            response = await self.client.usergroups_users_list(usergroup=group)
        except Exception:
            log.warning("could not read a user group", group=group, exc_info=True)
            return None
        return frozenset(str(user) for user in response.get("users") or [])
