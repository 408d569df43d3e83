"""How the parts of Firebreak reach each other, as small protocols.

Slack, investigations, escalation and remediation are separate components; each reaches the
others only through these methods (or the incident event bus), so each can be built, tested
and replaced on its own. None of the methods waits for Slack or an LLM: slow work is queued
and done in the background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from firebreak.store.schemas import RemediationProposal


class Notifier(Protocol):
    """Slack (or the console) as the rest of the app sees it. Delivery is durable and retried:
    a call records what must be said and returns; Slack outages only delay it."""

    def card_changed(self, incident_id: int, *, routine: bool = False) -> None:
        """Post the incident card if it has none yet, else update it in place; a `routine`
        change (more alerts) may be shown a little later."""

    def post_in_thread(
        self,
        incident_id: int,
        text: str,
        blocks: list[Any] | None = None,
        *,
        purpose: str = "note",
    ) -> None:
        """A reply in the incident card's thread (RCA, pages, remediation, resolution)."""

    def direct_message(self, user_id: str, text: str) -> None:
        """A DM to one user (escalation pages)."""


class Investigations(Protocol):
    def request(self, incident_id: int, *, actor: str, reason: str) -> bool:
        """Start an investigation in the background; False if one is already running."""

    async def wait_idle(self) -> None:
        """Until no investigation is running (the CLI, the demo and tests wait on this)."""

    async def answer_question(self, incident_id: int, question: str, *, actor: str) -> str:
        """Answer a question about the incident from its stored evidence and analysis."""

    async def decide_remediation(
        self,
        incident_id: int,
        *,
        approve: bool,
        actor: str,
        delay_s: float = 0,
        user_groups: Sequence[str] = (),
    ) -> str:
        """Resume the paused investigation with a human decision; returns what to tell them.
        `user_groups` are the actor's Slack user groups, for group-based approvers."""


class Escalations(Protocol):
    async def start(self, incident_id: int) -> None:
        """Snapshot the matching policy and schedule level 1 (idempotent)."""

    async def escalate_now(self, incident_id: int, *, actor: str) -> str:
        """Page the next level immediately; returns what to tell the human."""


@dataclass(frozen=True)
class ApprovedRemediation:
    incident_id: int
    proposal: RemediationProposal
    approved_by: str
    delay_s: float = 0
    key: str = ""  # unique per approval (the investigation run): scheduling it twice is a no-op


class Remediations(Protocol):
    def may_approve(self, user_id: str, user_groups: list[str]) -> bool:
        """Whether this Slack user may approve remediations (config `remediation.approvers`)."""

    async def schedule(self, approved: ApprovedRemediation) -> None:
        """Schedule the execution job (and its verification); survives restarts."""
