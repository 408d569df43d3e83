"""Answers to the slash command (`/incident …`, name from `slack.command`): the usage, the
incident list, an incident's timeline, and what a mistyped command is told."""

from __future__ import annotations

from slack_sdk.models.blocks import Block

from firebreak.bot.messages.blocks import (
    STATUS_EMOJI,
    bounded,
    escape,
    header,
    link,
    one_line,
    pack_sections,
    section,
    severity_label,
    slack_date,
    who,
)
from firebreak.store.schemas import IncidentOut, IncidentStatus, TimelineEventOut
from firebreak.tools.text import truncate

TIMELINE_SECTIONS_MAX = 20
LIST_SECTIONS_MAX = 20

EVENT_EMOJI = {
    "ALERT_RECEIVED": ":bell:",
    "INCIDENT_CREATED": ":rotating_light:",
    "AI_ANALYSIS_STARTED": ":mag:",
    "EVIDENCE_COLLECTED": ":card_index_dividers:",
    "ROOT_CAUSE_GENERATED": ":bulb:",
    "AI_ANALYSIS_FAILED": ":x:",
    "ACKNOWLEDGED": ":eyes:",
    "ESCALATED": ":mega:",
    "RESOLVED": ":white_check_mark:",
    "REOPENED": ":repeat:",
    "NOTE": ":memo:",
    "REMEDIATION_PROPOSED": ":hammer_and_wrench:",
    "REMEDIATION_APPROVED": ":+1:",
    "REMEDIATION_REJECTED": ":no_entry_sign:",
    "REMEDIATION_EXECUTED": ":gear:",
    "REMEDIATION_VERIFIED": ":white_check_mark:",
    "REMINDER": ":alarm_clock:",
    "SILENCED": ":no_bell:",
    "UNSILENCED": ":bell:",
    "POSTMORTEM_DRAFTED": ":page_facing_up:",
    "FEEDBACK": ":ballot_box_with_check:",
}


def timeline_blocks(events: list[TimelineEventOut]) -> list[Block]:
    """The incident timeline for ``/incident timeline ID`` (latest events kept when long)."""
    if not events:
        return [section("_No timeline events yet._")]
    lines = []
    for event in events:
        emoji = EVENT_EMOJI.get(event.type, ":small_blue_diamond:")
        actor = who(event.actor, nobody="")
        message = escape(truncate(one_line(event.message), 400))
        line = f"{emoji} {slack_date(event.at, '{time_secs}')} *{escape(event.type)}*"
        if actor:
            line += f" · {actor}"
        if message:
            line += f" — {message}"
        lines.append(line)
    blocks = [header(f":spiral_note_pad: Timeline ({len(events)} events)")]
    blocks += pack_sections(
        lines,
        max_sections=TIMELINE_SECTIONS_MAX,
        more="_…{n} earlier events not shown_",
        keep="last",
    )
    return bounded(blocks)


def incident_list_blocks(incidents: list[IncidentOut], list_url: str | None = None) -> list[Block]:
    """One line per incident for ``/incident list``; ``list_url`` (the list page, a signed
    link) ends it."""
    more = [section(list_page_text(list_url))] if list_url else []
    if not incidents:
        return [section(":tada: No open incidents."), *more]
    lines = [
        f"{STATUS_EMOJI[IncidentStatus(i.status)]} *#{i.id}* "
        f"{escape(truncate(one_line(i.title), 120))} · {severity_label(i.severity)} · "
        f"{escape(truncate(i.service, 60))} · {IncidentStatus(i.status).value} · "
        f"since {slack_date(i.created_at)}"
        for i in incidents
    ]
    blocks = [header(f"Incidents ({len(incidents)})")]
    blocks += pack_sections(lines, max_sections=LIST_SECTIONS_MAX, more="_…and {n} more incidents_")
    return bounded([*blocks, *more])


def list_page_text(url: str) -> str:
    label = link(url, "Every incident in Firebreak")
    return f":globe_with_meridians: {label} (a signed link, for you only)"


def page_link_text(incident_id: int, url: str) -> str:
    """The answer to ``/incident link ID``: the page's signed link, shown to the asker only."""
    return (
        f":globe_with_meridians: {link(url, f'Incident #{incident_id} in Firebreak')} — "
        "a signed link: it opens the page in a browser without the API token; share it only "
        "with people who may see the incident."
    )


def help_text(command: str = "/incident") -> str:
    """Usage of the slash command, as mrkdwn."""
    c = escape(command)
    rows = [
        ("help", "this help"),
        ("list", "open incidents"),
        ("status ID", "an incident's current state"),
        ("ack ID", "acknowledge an incident"),
        ("escalate ID", "page the next escalation level"),
        ("resolve ID", "resolve an incident"),
        ("investigate ID", "run the root-cause analysis again"),
        ("timeline ID", "everything that happened, in order"),
        ("postmortem ID", "a postmortem draft, posted in the incident's thread"),
        ("link ID", "a signed link to the incident's page, for you only"),
        ("declare TITLE", "open an incident by hand"),
        ("oncall [SCHEDULE]", "who is on call now, until when, and who is next"),
        ("silence ID DURATION", "silence the incident's alerts in Alertmanager (e.g. 4h)"),
        ("unsilence ID", "lift that silence"),
    ]
    body = "\n".join(f"• `{c} {usage}` — {what}" for usage, what in rows)
    return f"*Firebreak* — usage:\n{body}\nMention me in an incident thread to ask about it."


def unknown_command_text(command: str, subcommand: str) -> str:
    what = escape(truncate(subcommand, 40))
    return f":thinking_face: I don't know `{what}`.\n{help_text(command)}"


def usage_text(command: str, usage: str) -> str:
    c = escape(command)
    return f"Usage: `{c} {escape(usage)}` (`{c} help` lists everything)."


def no_incident_text(command: str, raw_id: str) -> str:
    return (
        f":grey_question: There is no incident `{escape(truncate(raw_id, 40))}`. "
        f"`{escape(command)} list` shows the open ones."
    )
