"""Who may act on an incident (its responders), and who may read it where.

`Access.responders` is the one place the responder set is computed: the users and user groups
of `access.responders`, and with the word `oncall` whoever is on call for the incident's
escalation policy now (its ladder's snapshot, `schedule:NAME` resolved at this instant) and
whoever was paged for it. User groups are expanded through `GroupMembers` (Slack's
`usergroups.users.list`, cached by the caller). Slack and the write API both ask here, so a
person may do the same things from every surface.

Without an `access` section everyone may act (`Responders.everyone`), as before it existed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import KW_ONLY, dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from firebreak.access.config import ONCALL, AccessConfig
from firebreak.escalation.config import EscalationPolicy
from firebreak.escalation.flows import ResolveTargets, match_policy
from firebreak.store.access import ResponderFacts, card_channels, responder_facts

USER_PREFIXES = ("U", "W")
GROUP_PREFIX = "S"


class GroupMembers(Protocol):
    async def members(self, group: str) -> frozenset[str]:
        """The users of a Slack user group (empty when it cannot be read)."""


@dataclass(frozen=True)
class Responders:
    """Who may act on one incident: `users`, found from the configured `named` users and
    groups and from `on_call` (those on call for it now or paged for it)."""

    incident_id: int
    users: frozenset[str]
    named: tuple[str, ...] = ()
    on_call: tuple[str, ...] = ()
    everyone: bool = False  # no `access` section: nobody is refused

    def __contains__(self, user: object) -> bool:
        return self.everyone or user in self.users


@dataclass(eq=False)
class Access:
    """`access.responders` applied to incidents; see the module docstring."""

    config: AccessConfig | None
    _: KW_ONLY
    engine: AsyncEngine
    groups: GroupMembers
    policies: list[EscalationPolicy]
    resolve_targets: ResolveTargets

    async def responders(self, incident_id: int) -> Responders | None:
        """The incident's responders; None when there is no such incident. Everything that
        makes someone a responder is gathered here and only here: every check (Slack, the
        write API) goes through this method."""
        if self.config is None:
            return Responders(incident_id, frozenset(), everyone=True)
        async with self.engine.connect() as conn:
            facts = await responder_facts(conn, incident_id)
        if facts is None:
            return None
        named = tuple(entry for entry in self.config.responders if entry != ONCALL)
        on_call = self._on_call(facts) if ONCALL in self.config.responders else ()
        users: set[str] = set()
        for target in (*named, *on_call):
            users |= await self._users_of(target)
        return Responders(incident_id, frozenset(users), named, on_call)

    async def may_act(self, user: str, incident_id: int) -> Responders | None:
        """None when `user` may act on the incident (or it does not exist: the action then
        says so); else its responders, to name in the refusal."""
        found = await self.responders(incident_id)
        return None if found is None or user in found else found

    async def may_read(self, user: str, incident_id: int, channel: str) -> Responders | None:
        """None when `user` may read the incident from `channel`: its card's channel (and
        thread), or anywhere for a responder; else its responders."""
        if self.config is None:
            return None
        async with self.engine.connect() as conn:
            cards = await card_channels(conn, [incident_id])
        if cards.get(incident_id) == channel:
            return None
        return await self.may_act(user, incident_id)

    async def readable(self, user: str, incident_ids: list[int], channel: str) -> set[int]:
        """Those of the incidents `user` may read from `channel`."""
        if self.config is None:
            return set(incident_ids)
        async with self.engine.connect() as conn:
            cards = await card_channels(conn, incident_ids)
        shown = {i for i in incident_ids if cards.get(i) == channel}
        for incident_id in set(incident_ids) - shown:
            if await self.may_act(user, incident_id) is None:
                shown.add(incident_id)
        return shown

    async def card_channel(self, incident_id: int) -> str | None:
        async with self.engine.connect() as conn:
            return (await card_channels(conn, [incident_id])).get(incident_id)

    def _on_call(self, facts: ResponderFacts) -> tuple[str, ...]:
        """Everyone the incident's policy pages, schedules resolved now, and everyone paged."""
        policy = facts.policy
        if not policy or not policy.get("levels"):
            found = match_policy(
                self.policies, facts.labels, severity=facts.severity, service=facts.service
            )
            policy = found.model_dump(mode="json") if found is not None else {"levels": []}
        notify = [t for level in policy.get("levels") or [] for t in level.get("notify") or []]
        now_on_call = [p.target for p in self.resolve_targets(notify, datetime.now(UTC))]
        return _unique(t for t in (*now_on_call, *facts.paged) if t and _is_person(t))

    async def _users_of(self, target: str) -> set[str]:
        if target.startswith(USER_PREFIXES):
            return {target}
        if target.startswith(GROUP_PREFIX):
            return set(await self.groups.members(target))
        return set()


def _is_person(target: str) -> bool:
    return target.startswith((*USER_PREFIXES, GROUP_PREFIX))


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
