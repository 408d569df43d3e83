"""What Firebreak answers a person who acted, worded from the action's outcome, and its
other short answers in a thread.

The incident flows (incidents/flows.py) say what happened as data; Slack, and the write API's
messages, are worded here (silences, remediation decisions and feedback in their own modules,
as `Reply`s too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from firebreak.access.responders import Responders
from firebreak.bot.messages.blocks import (
    SECTION_TEXT_MAX,
    STATUS_EMOJI,
    blocks_json,
    escape,
    mention,
    one_line,
    who,
)
from firebreak.incidents.flows import Outcome, Result
from firebreak.incidents.notices import ActedElsewhere
from firebreak.incidents.ports import Escalation
from firebreak.store.schemas import IncidentStatus
from firebreak.tools.text import truncate


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
        by = who(outcome.acknowledged_by, nobody="someone")
        return Reply(f"Incident #{i} was already acknowledged by {by}.", changed=False)
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
        paged = ", ".join(mention(t) for t in escalation.targets) or "nobody on call was"
        return Reply(f"Escalated incident #{i} to level {escalation.level}: {paged} paged.")
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


def resolution_text(incident_id: int, actor: str) -> str:
    """The thread reply when an incident resolves."""
    emoji = STATUS_EMOJI[IncidentStatus.RESOLVED]
    if actor == "alertmanager":
        return (
            f"{emoji} Incident #{incident_id} resolved: "
            "every alert of the group has cleared in Alertmanager."
        )
    return f"{emoji} Incident #{incident_id} resolved by {who(actor)}."


def answer_text(asker: str, question: str, answer: str) -> str:
    """A thread answer to ``@firebreak <question>`` (question quoted, answer escaped)."""
    quoted = escape(truncate(one_line(question), 300))
    body = escape(truncate(answer.strip() or "_(no answer)_", SECTION_TEXT_MAX - 400))
    return f"{who(asker)} asked: _{quoted}_\n{body}"


SURFACES = {"api": "the API", "cli": "the command line", "page": "the incident page"}
NOTE_SHOWN_MAX = 3000


def acted_elsewhere_text(notice: ActedElsewhere) -> str:
    """The thread's line for an action taken outside Slack: who, what, and where."""
    actor, where = who(notice.actor), SURFACES[notice.via]
    if notice.action == "note":
        text = escape(truncate(notice.text.strip(), NOTE_SHOWN_MAX))
        return f":memo: Note from {actor}: {text}\n_via {where}_"
    if notice.action == "acknowledged":
        emoji = STATUS_EMOJI[IncidentStatus.ACKNOWLEDGED]
        return f"{emoji} Acknowledged by {actor} (via {where}); the escalation ladder stops."
    return f":mega: Escalated by {actor} (via {where})."
