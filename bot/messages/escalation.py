"""Paging in Slack: the escalation level's page in the thread (mentions that notify), the DM
to whoever is paged, the reminder of an acknowledged incident, the card's "Paged" line, and the
on-call answers (`/incident oncall [SCHEDULE]`, the handoff DM).

The on-call answers are text only (mrkdwn): a few lines, and Slack renders `<!date^…>` in each
reader's own timezone, so one message serves people in every zone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from firebreak.bot.messages.blocks import escape, mention, one_line, slack_date, who
from firebreak.incidents.notices import OnCallHandoff, Reminder, YouArePaged
from firebreak.oncall.answers import OnCallAnswer
from firebreak.oncall.schedules import UnknownSchedule
from firebreak.store.escalations import LastPage
from firebreak.tools.text import truncate


def paged_line(page: LastPage) -> str:
    """`:mega: Paged (level 2): <@U0BOB> (on call for payments-primary)`."""
    paged = " ".join(
        mention(t) + (f" ({escape(page.reasons[t])})" if page.reasons.get(t) else "")
        for t in page.targets
    )
    parts = [paged] if paged else []
    parts += [f":warning: {escape(reason)}" for reason in page.unstaffed]
    return f":mega: Paged (level {page.level}): " + (" · ".join(parts) or "_nobody_")


def escalation_page_text(
    level: int,
    targets: list[str],
    reasons: dict[str, str] | None = None,
    unstaffed: Sequence[str] = (),
) -> str:
    """The thread message that pages an escalation level: mentions that notify."""
    reasons = reasons or {}
    paged = " ".join(
        mention(t) + (f" ({escape(reasons[t])})" if reasons.get(t) else "") for t in targets
    )
    if not paged and unstaffed:
        return f":warning: *Escalation level {level}*: {_unstaffed(unstaffed)}: nobody was paged."
    text = (
        f":mega: *Escalation level {level}*: {paged or '_(nobody configured)_'} — please take a "
        "look at this incident."
    )
    return f"{text}\n:warning: {_unstaffed(unstaffed)}." if unstaffed else text


def paged_channels(targets: Sequence[str]) -> list[str]:
    """The channels (``C…``/``G…``) among paged targets: each gets a page of its own, since
    ``<#C…>`` in the thread only links to the channel and notifies nobody."""
    return [t for t in dict.fromkeys(targets) if re.fullmatch(r"[CG][A-Z0-9]+", t)]


def channel_page_text(incident_id: int, level: int) -> str:
    """The message that pages a channel: ``<!here>``, everyone active in it."""
    return (
        f"<!here> :mega: Incident #{incident_id} pages this channel (escalation level {level})"
        f": please take a look and acknowledge it in its card's thread."
    )


def _unstaffed(reasons: Sequence[str]) -> str:
    text = "; ".join(escape(reason) for reason in reasons)
    return text[:1].upper() + text[1:]


def page_dm_text(notice: YouArePaged) -> str:
    title = escape(truncate(one_line(notice.title), 200))
    why = f" ({escape(notice.reason)})" if notice.reason else ""
    return (
        f":mega: You are paged for incident #{notice.incident_id} (escalation level "
        f"{notice.level}){why}: {title}. Please acknowledge it in its thread."
    )


def reminder_text(incident_id: int, notice: Reminder) -> str:
    return (
        f":alarm_clock: *Reminder*: incident #{incident_id} was acknowledged by "
        f"{who(notice.acknowledged_by, nobody='someone')} {slack_date(notice.acknowledged_at)} "
        "and is not resolved yet."
    )


# ---------------------------------------------------------------------- on call

MAX_INCIDENTS = 20


def _line(answer: OnCallAnswer) -> str:
    shift = answer.on_call
    person = mention(shift.user) if shift.user else "_nobody_"
    line = f"*{escape(answer.schedule)}*: {person} is on call"
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
        title = escape(truncate(one_line(incident.title), 150))
        lines.append(f"• #{incident.id} {title} ({escape(incident.status)})")
    if len(incidents) > MAX_INCIDENTS:
        lines.append(f"…and {len(incidents) - MAX_INCIDENTS} more")
    return "\n".join(lines)
