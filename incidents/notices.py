"""What the incident's people must be told, as data; `bot/` decides how it looks in Slack.

The domains (escalation, remediation, the agents) say *what* happened with one of these typed
notices; the notifier stores it in the outbox as JSON and the Slack surface renders it at
delivery, from the notice and the store (the RCA is read from the stored analysis), like the
card. A notice with a `key` names one Slack message: a later notice with the same key updates
that message in place (a remediation proposal, then its decision) instead of posting anew.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from firebreak.store.schemas import RemediationProposal


class _Notice(BaseModel):
    model_config = ConfigDict(frozen=True)

    @property
    def key(self) -> str | None:
        """Notices with the same key share one Slack message (≤ 32 characters)."""
        return None

    @property
    def update_only(self) -> bool:
        """Only updates the message of its key: posts nothing when there is none."""
        return False


class RcaReady(_Notice):
    """The analysis of investigation run `run_id` is stored. With `refresh`, something about
    it changed (a person's verdict): its message is rendered again in place, and nothing is
    posted if it has none."""

    kind: Literal["rca"] = "rca"
    run_id: str
    refresh: bool = False

    @property
    def key(self) -> str:
        return f"rca:{self.run_id[-24:]}"

    @property
    def update_only(self) -> bool:
        return self.refresh


class Paged(_Notice):
    """An escalation level was paged (in the thread: mentions that notify)."""

    kind: Literal["page"] = "page"
    level: int
    targets: list[str]
    reasons: dict[str, str] = {}  # target -> why ("on call for payments-primary")
    unstaffed: list[str] = []  # schedules that found nobody ("nobody is on call for sre")


class YouArePaged(_Notice):
    """The DM each paged person gets."""

    kind: Literal["paged_dm"] = "paged_dm"
    incident_id: int
    level: int
    title: str
    reason: str = ""


class HandoffIncident(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    title: str
    status: str


class OnCallHandoff(_Notice):
    """The DM to whoever takes over a schedule with `notify_handoff: true`: their shift and
    the open incidents whose policies page that schedule."""

    kind: Literal["handoff"] = "handoff"
    schedule: str
    until: datetime | None
    incidents: list[HandoffIncident] = []


class Reminder(_Notice):
    kind: Literal["reminder"] = "reminder"
    acknowledged_by: str | None
    acknowledged_at: datetime


class RemediationProposed(_Notice):
    """An allowlisted action waits for a human decision (Approve / Reject buttons)."""

    kind: Literal["remediation_proposed"] = "remediation_proposed"
    approval: str  # unique per proposal: names the one approval message
    proposal: RemediationProposal
    approve_later_s: float | None = None

    @property
    def key(self) -> str:
        return approval_key(self.approval)


class RemediationDecided(_Notice):
    """The decision on a proposal: the approval message is updated in place to show it."""

    kind: Literal["remediation_decided"] = "remediation_decided"
    approval: str
    proposal: RemediationProposal
    approved: bool
    actor: str
    delay_s: float = 0

    @property
    def key(self) -> str:
        return approval_key(self.approval)


class RemediationSuperseded(_Notice):
    """A newer proposal replaced this one: its approval message is updated in place to say so
    (its buttons go), and nothing is posted if it has none."""

    kind: Literal["remediation_superseded"] = "remediation_superseded"
    approval: str
    proposal: RemediationProposal
    superseded_by: str  # the newer proposal's approval

    @property
    def key(self) -> str:
        return approval_key(self.approval)

    @property
    def update_only(self) -> bool:
        return True


class RemediationScheduled(_Notice):
    kind: Literal["remediation_scheduled"] = "remediation_scheduled"
    action: str
    approved_by: str
    run_at: datetime
    delay_s: float


class RemediationFinished(_Notice):
    kind: Literal["remediation_finished"] = "remediation_finished"
    action: str
    ok: bool
    output: str = ""
    skipped: str | None = None
    verify: dict[str, Any] | None = None  # the action's verify config, when it will run
    verify_at: datetime | None = None


class RemediationVerified(_Notice):
    kind: Literal["remediation_verified"] = "remediation_verified"
    action: str
    ok: bool
    value: float | None
    promql: str
    op: str
    threshold: float
    error: str | None = None


Surface = Literal["api", "cli", "page"]
"""Where a person acted outside Slack: the write API, the command line, the incident page."""


class ActedElsewhere(_Notice):
    """A person acted on the incident outside Slack. Slack's own actions show in Slack already
    (the card, the clicker's answer); these are told in the thread, attributed, so the thread
    stays the one account of the incident wherever people act. `action` is `acknowledged`,
    `escalated` or `note` (with its `text`); a resolution has its own reply already."""

    kind: Literal["elsewhere"] = "elsewhere"
    action: Literal["acknowledged", "escalated", "note"]
    actor: str
    via: Surface
    text: str = ""


Notice = Annotated[
    RcaReady
    | Paged
    | YouArePaged
    | OnCallHandoff
    | Reminder
    | RemediationProposed
    | RemediationDecided
    | RemediationSuperseded
    | RemediationScheduled
    | RemediationFinished
    | RemediationVerified
    | ActedElsewhere,
    Field(discriminator="kind"),
]
NOTICE = TypeAdapter(Notice)


def approval_key(approval: str) -> str:
    return f"approval:{approval[-20:]}"
