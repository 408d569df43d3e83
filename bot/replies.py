"""What Firebreak answers a person who acted, worded from the action's outcome.

The incident flows (incidents/flows.py) say what happened as data; Slack, and the write API's
messages, are worded here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from firebreak.access.responders import Responders
from firebreak.bot.cards import escape, mention
from firebreak.bot.slack_outbox import blocks_json
from firebreak.incidents.feedback import FeedbackResult, Recorded
from firebreak.incidents.flows import Outcome, Result
from firebreak.incidents.ports import Decision, Escalation
from firebreak.store.schemas import IncidentStatus


@dataclass
class Reply:
    """What to tell the user, and whether the action changed anything."""

    text: str
    blocks: list[Any] | None = None
    changed: bool = True
    response_type: str = "ephemeral"
    missing: bool = False  # the incident does not exist

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"text": self.text, "response_type": self.response_type}
        if self.blocks:
            message["blocks"] = blocks_json(self.blocks)
        return message


RESPONDERS_NAMED = 10


def responders_text(found: Responders) -> str:
    """Who the incident's responders are, as configured: `<@U0ALICE>, <!subteam^S0SRE>,
    whoever is on call for it or was paged (<@U0BOB>)`."""
    parts = [mention(n) for n in found.named[:RESPONDERS_NAMED]]
    if found.on_call:
        on_call = ", ".join(mention(t) for t in found.on_call[:RESPONDERS_NAMED])
        parts.append(f"whoever is on call for it or was paged ({on_call})")
    return ", ".join(parts) or "nobody yet"


def not_a_responder(found: Responders, what: str) -> Reply:
    """The refusal of an action by someone who is not one of the incident's responders."""
    return Reply(
        f":lock: Only responders of incident #{found.incident_id} may {what}: "
        f"{responders_text(found)}. Nothing was changed.",
        changed=False,
    )


def not_readable_here(found: Responders, channel: str | None) -> Reply:
    """The refusal of `status` / `timeline` outside the incident's channel."""
    where = f"only in its channel ({mention(channel)})" if channel else "only in its channel"
    return Reply(
        f":lock: You can read incident #{found.incident_id} {where}, or as one of its "
        f"responders: {responders_text(found)}.",
        changed=False,
    )


def missing(incident_id: int) -> Reply:
    return Reply(f"There is no incident #{incident_id}.", changed=False, missing=True)


def acknowledged(outcome: Outcome) -> Reply:
    i = outcome.incident_id
    if outcome.result is Result.MISSING:
        return missing(i)
    if outcome.changed:
        return Reply(f":eyes: You acknowledged incident #{i}; escalation stopped.")
    if outcome.status == IncidentStatus.ACKNOWLEDGED:
        who = mention(outcome.acknowledged_by) if outcome.acknowledged_by else "someone"
        return Reply(f"Incident #{i} was already acknowledged by {who}.", changed=False)
    return Reply(f"Incident #{i} is already resolved.", changed=False)


def resolved(outcome: Outcome) -> Reply:
    i = outcome.incident_id
    if outcome.result is Result.MISSING:
        return missing(i)
    if outcome.changed:
        return Reply(f":white_check_mark: You resolved incident #{i}.")
    return Reply(f"Incident #{i} is already resolved.", changed=False)


def escalated(outcome: Outcome) -> Reply:
    i = outcome.incident_id
    escalation = outcome.escalation or Escalation("raced")
    if outcome.result is Result.MISSING or escalation.result == "missing":
        return missing(i)
    if escalation.result == "paged":
        who = ", ".join(mention(t) for t in escalation.targets) or "nobody on call was"
        return Reply(f"Escalated incident #{i} to level {escalation.level}: {who} paged.")
    text = {
        "resolved": f"Incident #{i} is resolved; nothing to escalate.",
        "no_policy": (
            f"No escalation policy matches incident #{i}, so there is nobody to page. "
            "Nothing was changed."
        ),
        "last_level": (
            f"Incident #{i} is already at the last escalation level ({escalation.level}); "
            "there is nobody further to page."
        ),
        "raced": f"Incident #{i} changed while escalating; please try again.",
    }[escalation.result]
    return Reply(text, changed=False)


def investigating(outcome: Outcome) -> Reply:
    i = outcome.incident_id
    if outcome.result is Result.MISSING:
        return missing(i)
    if outcome.changed:
        return Reply(
            f":mag: Investigating incident #{i} again; "
            "the analysis will appear in the card's thread."
        )
    return Reply(f"An investigation of incident #{i} is already running.", changed=False)


def declared(incident_id: int, title: str, channel: str) -> Reply:
    return Reply(
        f":rotating_light: Declared incident #{incident_id}: {escape(title)}. "
        f"Its card is going to {mention(channel)}."
    )


STALE_DECISIONS = {
    "nothing_waiting": "No remediation on incident #{i} is waiting for a decision.",
    "superseded": (
        ":fast_forward: This proposal for incident #{i} was superseded by a newer one, so "
        "nothing was done. Decide on the latest proposal in the thread."
    ),
    "decided": "This proposal for incident #{i} was already decided, so nothing was done.",
    "mismatch": (
        ":warning: This button does not match the proposal waiting on incident #{i}, so "
        "nothing was done. Decide on the latest proposal in the thread."
    ),
}


def decided(decision: Decision, incident_id: int, approvers: list[str]) -> str:
    if decision == "refused":
        who = ", ".join(mention(a) for a in approvers[:10])
        return (
            "Sorry, you are not allowed to approve remediations for this bot. "
            f"Please ask one of: {who}."
        )
    if decision in STALE_DECISIONS:
        return STALE_DECISIONS[decision].format(i=incident_id)
    verb = "Approved" if decision == "approved" else "Rejected"
    return f"{verb}. The decision is recorded on incident #{incident_id}'s timeline."


REFUSED_FEEDBACK = {
    FeedbackResult.MISSING: "There is no incident #{i}.",
    FeedbackResult.NO_ANALYSIS: "Incident #{i} has no analysis to judge yet.",
    FeedbackResult.SUPERSEDED: (
        "This analysis of incident #{i} was replaced by a newer one, so nothing was recorded. "
        "Judge the latest analysis in the thread."
    ),
}


def feedback_refused(result: FeedbackResult, incident_id: int) -> str | None:
    """Why a verdict was not taken, in plain words (a modal's field error takes no markup);
    None when it was taken."""
    text = REFUSED_FEEDBACK.get(result)
    return text.format(i=incident_id) if text else None


def feedback_given(done: Recorded, incident_id: int) -> Reply:
    """The answer to Correct (or a submitted Wrong): silence when recorded, the reply itself
    shows the verdict to everyone; otherwise why nothing changed."""
    refused = feedback_refused(done.result, incident_id)
    if refused is not None:
        return Reply(
            f":warning: {refused}",
            changed=False,
            missing=done.result is FeedbackResult.MISSING,
        )
    if done.result is FeedbackResult.UNCHANGED:
        return Reply(
            f"You already said that about the analysis of incident #{incident_id}.", changed=False
        )
    return Reply(f"Recorded your verdict on the analysis of incident #{incident_id}. Thank you.")
