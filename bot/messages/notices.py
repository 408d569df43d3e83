"""A notice (incidents/notices.py) as it is said in Slack: the incident flows say what
happened as data, each subject's module words it, and this one picks the module."""

from __future__ import annotations

from firebreak.bot.messages.blocks import Message
from firebreak.bot.messages.escalation import escalation_page_text, page_dm_text, reminder_text
from firebreak.bot.messages.rca import rca_card
from firebreak.bot.messages.remediation import (
    SUPERSEDED,
    remediation_card,
    remediation_decision_text,
    remediation_finished_text,
    remediation_scheduled_text,
    remediation_verified_text,
)
from firebreak.bot.messages.replies import acted_elsewhere_text
from firebreak.incidents.notices import (
    ActedElsewhere,
    Notice,
    Paged,
    RcaReady,
    RemediationDecided,
    RemediationFinished,
    RemediationProposed,
    RemediationScheduled,
    RemediationSuperseded,
    RemediationVerified,
    Reminder,
    YouArePaged,
)
from firebreak.store.schemas import Analysis, IncidentOut


def notice_message(
    incident_id: int,
    notice: Notice,
    analysis: Analysis | None,
    incident: IncidentOut | None,
    *,
    public_url: str | None = None,
) -> Message:
    """A notice (incidents/notices.py) as it is said in Slack: (fallback text, blocks). The
    RCA needs its stored analysis and the incident; the others carry what they say."""
    match notice:
        case RcaReady():
            assert analysis is not None and incident is not None
            return rca_card(incident, analysis, public_url=public_url)
        case Paged():
            return _said(
                escalation_page_text(notice.level, notice.targets, notice.reasons, notice.unstaffed)
            )
        case YouArePaged():
            return _said(page_dm_text(notice))
        case Reminder():
            return _said(reminder_text(incident_id, notice))
        case RemediationProposed():
            return remediation_card(
                incident_id,
                notice.proposal,
                approval=notice.approval,
                approve_later_s=notice.approve_later_s,
            )
        case RemediationDecided():
            decision = remediation_decision_text(notice)
            return remediation_card(
                incident_id, notice.proposal, approval=notice.approval, decision=decision
            )
        case RemediationSuperseded():
            return remediation_card(
                incident_id, notice.proposal, approval=notice.approval, decision=SUPERSEDED
            )
        case RemediationScheduled():
            return _said(remediation_scheduled_text(notice))
        case RemediationFinished():
            return _said(remediation_finished_text(notice))
        case RemediationVerified():
            return _said(remediation_verified_text(notice))
        case ActedElsewhere():
            return _said(acted_elsewhere_text(notice))
    raise TypeError(f"no Slack rendering for {type(notice).__name__}")


def _said(text: str) -> Message:
    return text, []


PURPOSES = {
    "rca": "rca",
    "page": "page",
    "paged_dm": "dm",
    "reminder": "reminder",
    "elsewhere": "note",
}


def notice_purpose(notice: Notice) -> str:
    """The short name a delivered message is kept under (`slack_messages.purpose`)."""
    return notice.key or PURPOSES.get(notice.kind, "remediation")
