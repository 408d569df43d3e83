"""What the incident flows need from the slower parts, as small protocols.

Slack, investigations and escalation are separate components; each reaches the others only
through these methods (or the incident event bus), so each can be built, tested and replaced
on its own. None of the methods waits for Slack or an LLM: slow work is queued and done in the
background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from firebreak.incidents.events import IncidentEvent
from firebreak.incidents.notices import Notice
from firebreak.incidents.postmortem import PostmortemDraft


class Notifier(Protocol):
    """Slack (or the console) as the rest of the app sees it. Delivery is durable and retried:
    a call records what must be said and returns; Slack outages only delay it."""

    def card_changed(self, incident_id: int, *, routine: bool = False) -> None:
        """Post the incident card if it has none yet, else update it in place; a `routine`
        change (more alerts) may be shown a little later."""

    def tell(self, incident_id: int, notice: Notice) -> None:
        """Say `notice` in the incident card's thread (RCA, pages, remediation)."""

    def tell_user(self, user_id: str, notice: Notice) -> None:
        """Say `notice` to one user directly (escalation pages)."""


Decision = Literal[
    "approved", "rejected", "refused", "nothing_waiting", "superseded", "decided", "mismatch"
]
"""What became of a remediation decision: recorded; refused (not an approver); no such proposal
waiting; its proposal was superseded by a newer one or already decided; or what the button
showed does not match the proposal waiting (nothing changes in the last five)."""


@dataclass(frozen=True)
class RemediationVote:
    """A person's Approve or Reject on one proposal message: the run it was proposed in
    (`approval`) and the digest of the proposal shown, so a click decides only what it showed."""

    incident_id: int
    approve: bool
    actor: str
    approval: str | None = None
    digest: str | None = None
    delay_s: float = 0
    user_groups: Sequence[str] = ()


class Investigations(Protocol):
    def on_event(self, event: IncidentEvent) -> None:
        """Bus subscriber: investigate newly opened incidents (only schedules work)."""

    def request(self, incident_id: int, *, actor: str, reason: str) -> bool:
        """Start an investigation in the background; False if one is already running."""

    async def wait_idle(self) -> None:
        """Until no investigation is running (the CLI, the demo and tests wait on this)."""

    async def answer_question(self, incident_id: int, question: str, *, actor: str) -> str:
        """Answer a question about the incident from its stored evidence and analysis."""

    async def decide_remediation(self, vote: RemediationVote) -> Decision:
        """Resume the paused investigation `approval` (the proposal's run) with a human
        decision on the proposal whose `RemediationProposal.digest()` is `digest`: what the
        person was shown. `user_groups` are the actor's Slack user groups, for group-based
        approvers."""


class NoInvestigations:
    """Investigations answered by nobody: where Firebreak acts without investigating (the
    command line's actions; tests of the HTTP surface alone)."""

    def on_event(self, event: IncidentEvent) -> None:
        return None

    def request(self, incident_id: int, *, actor: str, reason: str) -> bool:
        return False

    async def wait_idle(self) -> None:
        return None

    async def answer_question(self, incident_id: int, question: str, *, actor: str) -> str:
        return "Investigations do not run here, so there is nobody to answer."

    async def decide_remediation(self, vote: RemediationVote) -> Decision:
        return "nothing_waiting"


@dataclass(frozen=True)
class Escalation:
    """What a manual escalation did: `paged` (level, targets), or why nobody was paged:
    `missing`, `resolved`, `no_policy`, `last_level` (at `level`) or `raced` (try again)."""

    result: Literal["paged", "missing", "resolved", "no_policy", "last_level", "raced"]
    level: int = 0
    targets: tuple[str, ...] = ()


class Escalations(Protocol):
    async def escalate_now(self, incident_id: int, *, actor: str) -> Escalation:
        """Page the next level immediately."""


class Postmortems(Protocol):
    async def draft(self, incident_id: int, *, actor: str) -> PostmortemDraft | None:
        """The incident's postmortem draft as Markdown (None: no such incident); recorded on
        the timeline as `POSTMORTEM_DRAFTED` by `actor`."""
