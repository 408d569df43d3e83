"""Slack wording for on-call answers: `/incident oncall [SCHEDULE]` and the handoff DM.

Text only (mrkdwn): the answers are a few lines, and Slack renders `<!date^…>` in each
reader's own timezone, so one message serves people in every zone.
"""

from __future__ import annotations

from collections.abc import Sequence

from firebreak.bot.cards import escape, mention, slack_date, truncate
from firebreak.incidents.notices import OnCallHandoff
from firebreak.oncall.answers import OnCallAnswer
from firebreak.oncall.schedules import UnknownSchedule

__all__ = ["handoff_text", "oncall_text", "unknown_schedule_text"]

MAX_INCIDENTS = 20


def _line(answer: OnCallAnswer) -> str:
    shift = answer.on_call
    who = mention(shift.user) if shift.user else "_nobody_"
    line = f"*{escape(answer.schedule)}*: {who} is on call"
    if shift.reason == "override":
        line += " (override)"
    line += f" until {slack_date(shift.until)}" if shift.until else ", with no change in sight"
    if answer.next is not None:
        line += f" · next: {mention(answer.next.user)} from {slack_date(answer.next.at)}"
    return line


def oncall_text(answers: Sequence[OnCallAnswer]) -> str:
    """One line per schedule: who now, until when, who next."""
    if not answers:
        return "No on-call schedules are configured."
    return "\n".join([":telephone_receiver: *On call*", *(_line(a) for a in answers)])


def unknown_schedule_text(error: UnknownSchedule) -> str:
    return f":warning: {escape(str(error))}"


def handoff_text(notice: OnCallHandoff) -> str:
    """The DM to whoever takes over: their shift, and the open incidents paging it."""
    until = f" until {slack_date(notice.until)}" if notice.until else ""
    lines = [f":wave: You are now on call for *{escape(notice.schedule)}*{until}."]
    incidents = notice.incidents
    if not incidents:
        lines.append("No open incidents page this schedule.")
        return "\n".join(lines)
    lines.append(f"Open incidents paging this schedule ({len(incidents)}):")
    for incident in incidents[:MAX_INCIDENTS]:
        title = escape(truncate(" ".join(incident.title.split()), 150))
        lines.append(f"• #{incident.id} {title} ({escape(incident.status)})")
    if len(incidents) > MAX_INCIDENTS:
        lines.append(f"…and {len(incidents) - MAX_INCIDENTS} more")
    return "\n".join(lines)
