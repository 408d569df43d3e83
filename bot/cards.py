"""Every Slack message Firebreak posts, built in one place from Block Kit objects.

Cards are made of ``slack_sdk.models.blocks`` objects, never hand-written dicts, so slack-sdk
validates the per-element limits when they are serialised. What slack-sdk does not check is
bounded here by design: every list is cut to a fixed number of items, every text goes through
``truncate`` (one helper, one ellipsis), and no message can exceed ``MAX_BLOCKS``.

Text taken from alerts, logs and the LLM is escaped (``&``, ``<``, ``>``) so an alert label can
neither break the markup nor ping ``@channel``. Mentions Firebreak means to make are built by
``mention``.

``render_text`` turns any list of blocks into text for the terminal: plain, or rich console
markup (console mode, the demo), from one reading of Slack's mrkdwn.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from rich.markup import escape as rich_escape
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    MarkdownBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from firebreak.incidents.feedback import MAX_CAUSE
from firebreak.incidents.notices import (
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
from firebreak.store.escalations import LastPage
from firebreak.store.schemas import (
    AlertOut,
    Analysis,
    EvidenceItem,
    ExecutionStatus,
    Feedback,
    HistoryRef,
    IncidentOut,
    IncidentStatus,
    RemediationProposal,
    TimelineEventOut,
    Verdict,
)
from firebreak.store.silences import ActiveSilence
from firebreak.tools.evidence import reading_values
from firebreak.tools.promql import metric_reading_text, short_metric

# Block Kit limits (https://docs.slack.dev/reference/block-kit/).
MAX_BLOCKS = 50
SECTION_TEXT_MAX = 3000
FIELD_TEXT_MAX = 2000
FIELDS_MAX = 10
HEADER_TEXT_MAX = 150
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
CONTEXT_ELEMENTS_MAX = 10
CONFIRM_TEXT_MAX = 300
FALLBACK_TEXT_MAX = 3000  # the top-level `text` (notifications, screen readers)

# Our own bounds.
ALERTS_SHOWN = 5
LOG_EVIDENCE_SHOWN = 12
METRIC_EVIDENCE_SHOWN = 8
CLUSTER_EVIDENCE_SHOWN = 8
EVIDENCE_LINE_MAX = 400
REASONING_MAX = 1500
SUMMARY_MAX = 300
TIMELINE_SECTIONS_MAX = 20
LIST_SECTIONS_MAX = 20

# action_ids the interactivity handlers listen on.
ACTION_ACK = "incident_ack"
ACTION_ESCALATE = "incident_escalate"
ACTION_RESOLVE = "incident_resolve"
ACTION_INVESTIGATE = "incident_investigate"
ACTION_OPEN_PAGE = "incident_open_page"  # a URL button: Slack still sends block_actions
ACTION_REMEDIATION_APPROVE = "remediation_approve"
ACTION_REMEDIATION_REJECT = "remediation_reject"
ACTION_REMEDIATION_APPROVE_LATER = "remediation_approve_later"
ACTION_SILENCE = "incident_silence"  # + "_N": one button per configured duration
ACTION_UNSILENCE = "incident_unsilence"
ACTION_FEEDBACK_CORRECT = "rca_feedback_correct"
ACTION_FEEDBACK_WRONG = "rca_feedback_wrong"
VIEW_ACTUAL_CAUSE = "rca_actual_cause"  # the Wrong button's modal (callback_id)
CAUSE_BLOCK = "actual_cause"
CAUSE_INPUT = "text"
FEEDBACK_ACTIONS_BLOCK = "rca_feedback"
INCIDENT_ACTIONS_BLOCK = "incident_actions"
SILENCE_ACTIONS_BLOCK = "incident_silence"
REMEDIATION_ACTIONS_BLOCK = "remediation_actions"

ELLIPSIS = "…"

STATUS_EMOJI = {
    IncidentStatus.TRIGGERED: ":rotating_light:",
    IncidentStatus.ACKNOWLEDGED: ":eyes:",
    IncidentStatus.RESOLVED: ":white_check_mark:",
}
SEVERITY_EMOJI = {
    "critical": ":red_circle:",
    "page": ":red_circle:",
    "high": ":red_circle:",
    "error": ":large_orange_circle:",
    "warning": ":large_orange_circle:",
    "medium": ":large_orange_circle:",
    "info": ":large_blue_circle:",
    "low": ":large_blue_circle:",
}
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

_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,4}$")
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
_FORMATTED_MENTION = re.compile(r"<@[UW][A-Z0-9]+>|<!subteam\^S[A-Z0-9]+>|<#[CG][A-Z0-9]+>")


# ---------------------------------------------------------------------- text helpers


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in "…" when cut.

    Never cuts an ``&amp;``-style entity in half, so it is safe on escaped mrkdwn.
    """
    if limit < 1:
        raise ValueError("limit must be >= 1")
    if len(text) <= limit:
        return text
    cut = _PARTIAL_ENTITY.sub("", text[: limit - len(ELLIPSIS)]).rstrip()
    return cut + ELLIPSIS


def escape(text: str) -> str:
    """Escape the three characters Slack's markup needs escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code_safe(text: str) -> str:
    return escape(text).replace("```", "` ` `")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _link(url: str, label: str) -> str:
    """``<url|label>`` for http(s) URLs; just the label otherwise."""
    if not url.startswith(("http://", "https://")):
        return escape(label)
    safe = quote(url, safe=":/?#[]@!$&'()*+,;=%~-._")
    safe = safe.replace("&", "&amp;")
    return f"<{safe}|{escape(label).replace('|', '¦')}>"


def mention(target: str) -> str:
    """``U…``/``W…`` -> ``<@U…>``, ``S…`` -> ``<!subteam^S…>``, ``C…``/``G…`` -> ``<#C…>``.

    An already-formatted mention of one user, group or channel passes through; anything else
    (`<!channel>`, `<!here>`, a link, a name someone typed) is escaped text, because actors
    come from API callers and schedules, not only from configuration.
    """
    target = target.strip()
    if _FORMATTED_MENTION.fullmatch(target):
        return target
    if re.fullmatch(r"[UW][A-Z0-9]+", target):
        return f"<@{target}>"
    if re.fullmatch(r"S[A-Z0-9]+", target):
        return f"<!subteam^{target}>"
    if re.fullmatch(r"[CG][A-Z0-9]+", target):
        return f"<#{target}>"
    return escape(target)


def _who(actor: str | None) -> str:
    if not actor:
        return "—"
    return f"<@{actor}>" if _SLACK_USER.match(actor) else escape(actor)


def _epoch(at: datetime) -> int:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return int(at.timestamp())


def slack_date(at: datetime, fmt: str = "{date_short_pretty} {time}") -> str:
    """Slack's localised date token, with a UTC fallback for clients that cannot render it."""
    fallback = datetime.fromtimestamp(_epoch(at), UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{_epoch(at)}^{fmt}|{fallback}>"


def _pack(
    lines: Sequence[str], limit: int, more: str = "…and {n} more", *, extra: int = 0
) -> tuple[str, int]:
    """As many whole lines as fit in ``limit`` characters, plus a "more" line for the rest.

    ``extra`` counts items already left out before packing (they are added to the "more"
    line). A line too long on its own is truncated. Returns the text and the number left out.
    """
    kept: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        left = len(lines) - index - 1 + extra
        sep = 1 if kept else 0
        reserve = len(more.format(n=left)) + 1 if left else 0
        line = truncate(line, max(1, limit - reserve - sep))
        if kept and used + sep + len(line) + reserve > limit:
            omitted = len(lines) - index + extra
            kept.append(more.format(n=omitted))
            return "\n".join(kept), omitted
        kept.append(line)
        used += sep + len(line)
    if extra:
        kept.append(more.format(n=extra))
    return "\n".join(kept), extra


def _pack_sections(
    lines: Sequence[str], *, max_sections: int, more: str, keep: str = "first"
) -> list[Block]:
    """Lines spread over at most ``max_sections`` sections; the rest summarised by ``more``."""
    chunks: list[list[str]] = [[]]
    sizes = [0]
    for line in lines:
        line = truncate(line, SECTION_TEXT_MAX - 100)
        if sizes[-1] + len(line) + 1 > SECTION_TEXT_MAX - 100 and chunks[-1]:
            chunks.append([])
            sizes.append(0)
        chunks[-1].append(line)
        sizes[-1] += len(line) + 1
    if len(chunks) > max_sections:
        if keep == "last":
            dropped = chunks[: len(chunks) - max_sections]
            chunks = chunks[len(chunks) - max_sections :]
            omitted = sum(len(c) for c in dropped)
            chunks[0].insert(0, more.format(n=omitted))
        else:
            dropped = chunks[max_sections:]
            chunks = chunks[:max_sections]
            omitted = sum(len(c) for c in dropped)
            chunks[-1].append(more.format(n=omitted))
    return [_section("\n".join(chunk)) for chunk in chunks if chunk]


# ---------------------------------------------------------------------- block helpers


def _section(text: str, *, fields: Sequence[str] = (), block_id: str | None = None) -> Block:
    return SectionBlock(
        text=MarkdownTextObject(text=truncate(text, SECTION_TEXT_MAX)) if text else None,
        fields=[MarkdownTextObject(text=truncate(f, FIELD_TEXT_MAX)) for f in fields[:FIELDS_MAX]]
        or None,
        block_id=block_id,
    )


def _header(text: str) -> Block:
    return HeaderBlock(
        text=PlainTextObject(text=truncate(_one_line(text), HEADER_TEXT_MAX), emoji=True)
    )


def _context(*parts: str) -> Block:
    items = [p for p in parts if p][:CONTEXT_ELEMENTS_MAX]
    return ContextBlock(
        elements=[MarkdownTextObject(text=truncate(p, SECTION_TEXT_MAX)) for p in items]
    )


def _button(
    text: str,
    action_id: str,
    value: str,
    *,
    style: str | None = None,
    confirm: ConfirmObject | None = None,
) -> ButtonElement:
    if len(value) > BUTTON_VALUE_MAX:
        raise ValueError(f"button value longer than {BUTTON_VALUE_MAX} characters")
    return ButtonElement(
        text=PlainTextObject(text=truncate(text, BUTTON_TEXT_MAX), emoji=True),
        action_id=action_id,
        value=value,
        style=style,
        confirm=confirm,
    )


def _confirm(title: str, text: str, yes: str) -> ConfirmObject:
    return ConfirmObject(
        title=PlainTextObject(text=truncate(title, 100)),
        text=MarkdownTextObject(text=truncate(text, CONFIRM_TEXT_MAX)),
        confirm=PlainTextObject(text=truncate(yes, 30)),
        deny=PlainTextObject(text="Cancel"),
    )


def _bounded(blocks: list[Block]) -> list[Block]:
    """Never more than MAX_BLOCKS; the builders stay far below it, this is the last guard."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    return [*blocks[: MAX_BLOCKS - 1], _context(f"{len(blocks) - MAX_BLOCKS + 1} blocks omitted")]


def _fallback(text: str) -> str:
    """The top-level ``text``: notifications parse it as mrkdwn, so it is escaped too."""
    return truncate(escape(_one_line(text)), FALLBACK_TEXT_MAX)


# ---------------------------------------------------------------------- incident card


def status_label(status: IncidentStatus | str) -> str:
    status = IncidentStatus(status)
    return f"{STATUS_EMOJI[status]} {status.value.capitalize()}"


def severity_label(severity: str) -> str:
    emoji = SEVERITY_EMOJI.get(severity.lower(), ":white_circle:")
    return f"{emoji} {escape(severity or 'unknown')}"


def _alert_line(alert: AlertOut) -> str:
    name = alert.labels.get("alertname", alert.fingerprint)
    where = alert.labels.get("instance") or alert.labels.get("pod") or ""
    summary = alert.annotations.get("summary") or alert.annotations.get("description") or ""
    head = f"• *{escape(truncate(name, 100))}*"
    if where:
        head += f" `{escape(truncate(where, 80))}`"
    if alert.status == "resolved":
        head += " _(resolved)_"
    if summary:
        head += " — " + escape(truncate(_one_line(summary), 200))
    if alert.generator_url:
        head += " · " + _link(alert.generator_url, "graph")
    return head


def _alertmanager_links(incident: IncidentOut, alertmanager_url: str) -> list[str]:
    base = alertmanager_url.rstrip("/")
    matchers = [
        f'{k}="{v}"' for k, v in sorted(incident.labels.items()) if k in {"alertname", "service"}
    ]
    if not matchers and incident.alerts:
        name = incident.alerts[0].labels.get("alertname")
        matchers = [f'alertname="{name}"'] if name else []
    query = quote("{" + ",".join(matchers) + "}", safe="") if matchers else ""
    alerts = f"{base}/#/alerts" + (f"?filter={query}" if query else "")
    silence = f"{base}/#/silences/new" + (f"?filter={query}" if query else "")
    return [_link(alerts, "Open in Alertmanager"), _link(silence, "Silence")]


def incident_actions(incident: IncidentOut) -> Block:
    """Acknowledge / Escalate / Resolve / Re-investigate, as the incident's status allows."""
    value = str(incident.id)
    buttons: list[ButtonElement] = []
    if incident.status == IncidentStatus.TRIGGERED:
        buttons.append(_button(":eyes: Acknowledge", ACTION_ACK, value, style="primary"))
    if incident.status != IncidentStatus.RESOLVED:
        buttons.append(
            _button(
                ":mega: Escalate",
                ACTION_ESCALATE,
                value,
                confirm=_confirm(
                    "Escalate?",
                    f"Page the next escalation level for incident #{incident.id}?",
                    "Escalate",
                ),
            )
        )
        buttons.append(
            _button(
                ":white_check_mark: Resolve",
                ACTION_RESOLVE,
                value,
                style="danger",
                confirm=_confirm(
                    "Resolve?", f"Mark incident #{incident.id} as resolved?", "Resolve"
                ),
            )
        )
    buttons.append(_button(":mag: Re-investigate", ACTION_INVESTIGATE, value))
    return ActionsBlock(elements=buttons, block_id=INCIDENT_ACTIONS_BLOCK)


def incident_card(
    incident: IncidentOut,
    *,
    alertmanager_url: str | None = None,
    oncall: OnCallView | None = None,
    page_url: str | None = None,
    now: datetime | None = None,
) -> tuple[str, list[Block]]:
    """The incident's one card in ``slack.channel``: (fallback text, blocks).

    "Started" is when the earliest alert started firing (not when Firebreak heard of it), and
    how long it has fired is worked out at ``now``, when the card is rendered: Slack's date
    tokens cannot count. ``page_url`` (the incident's page, a signed link) adds "Open in
    Firebreak"."""
    status = IncidentStatus(incident.status)
    title = _one_line(incident.title) or f"Incident {incident.id}"
    fallback = _fallback(
        f"{STATUS_EMOJI[status]} [{incident.severity.upper()}] #{incident.id} {title} — "
        f"{status.value} ({incident.service})"
    )
    blocks: list[Block] = [_header(f"{STATUS_EMOJI[status]} #{incident.id} {title}")]

    alert_total = max(incident.alert_count, len(incident.alerts))
    alerts_field = f"*Alerts*\n{alert_total}"
    if incident.truncated_alerts:
        alerts_field += f" (+{incident.truncated_alerts} truncated by Alertmanager)"
    fields = [
        f"*Status*\n{status_label(status)}",
        f"*Severity*\n{severity_label(incident.severity)}",
        f"*Service*\n{escape(incident.service or 'unknown')}",
        alerts_field,
        f"*Escalation level*\n{incident.escalation_level}",
        f"*Acknowledged by*\n{_who(incident.acknowledged_by)}",
        f"*Started*\n{slack_date(incident.started_at)} ({_firing_for(incident, now)})",
    ]
    if incident.resolved_at is not None:
        fields.append(f"*Resolved*\n{slack_date(incident.resolved_at)}")
    blocks.append(_section("", fields=fields))

    analysis = incident.analysis
    if analysis is not None:
        tag = " _(offline analysis)_" if _is_offline(analysis) else ""
        blocks.append(
            _section(
                f":bulb: *Root cause* ({analysis.confidence_score}% confidence){tag}: "
                f"{escape(truncate(_one_line(analysis.root_cause), SUMMARY_MAX))}\n"
                "_Full analysis in the thread._"
                + (f"\n{verdict_line(analysis.feedback)}" if analysis.feedback else "")
            )
        )

    if incident.alerts:
        lines = [_alert_line(a) for a in incident.alerts[:ALERTS_SHOWN]]
        extra = alert_total - len(lines)
        if extra > 0:
            lines.append(f"…and {extra} more alert{'s' if extra != 1 else ''}")
        text, _ = _pack(lines, SECTION_TEXT_MAX)
        blocks.append(_section(text))

    if alertmanager_url:
        blocks.append(_context(*_alertmanager_links(incident, alertmanager_url)))
    if incident.related:
        blocks.append(_context(related_line(incident.related)))

    blocks.extend(oncall_blocks(incident, oncall or OnCallView()))
    actions = incident_actions(incident)
    if page_url:
        actions.elements.append(
            ButtonElement(
                text=PlainTextObject(text=":globe_with_meridians: Open in Firebreak", emoji=True),
                action_id=ACTION_OPEN_PAGE,
                url=page_url,
            )
        )
    blocks.append(actions)
    footer = [f"Incident #{incident.id}"]
    if incident.group_key:
        footer.append(f"group `{escape(truncate(incident.group_key, 80))}`")
    blocks.append(_context(" · ".join(footer)))
    return fallback, _bounded(blocks)


# ---------------------------------------------------------------------- paging and silences


@dataclass(frozen=True)
class OnCallView:
    """What the card says about paging and silences (read by the outbox from
    store/escalations.py and store/silences.py).
    `silence_durations` empty: Alertmanager is not configured, so no silence controls."""

    page: LastPage | None = None
    silence: ActiveSilence | None = None
    silence_durations: Sequence[str] = ()


def paged_line(page: LastPage) -> str:
    """`:mega: Paged (level 2): <@U0BOB> (on call for payments-primary)`."""
    who = " ".join(
        mention(t) + (f" ({escape(page.reasons[t])})" if page.reasons.get(t) else "")
        for t in page.targets
    )
    parts = [who] if who else []
    parts += [f":warning: {escape(reason)}" for reason in page.unstaffed]
    return f":mega: Paged (level {page.level}): " + (" · ".join(parts) or "_nobody_")


def silenced_line(silence: ActiveSilence) -> str:
    return f":no_bell: Silenced until {slack_date(silence.ends_at)} by {_who(silence.created_by)}"


def silence_value(incident_id: int, duration: str) -> str:
    return f"{incident_id}:{duration}"


def parse_silence_value(value: str) -> tuple[int, str]:
    """Inverse of ``silence_value``; ValueError for anything else."""
    incident_id, sep, duration = value.partition(":")
    if not sep or not duration:
        raise ValueError(f"not a silence value: {value!r}")
    return int(incident_id), duration


def silence_controls(incident: IncidentOut, view: OnCallView) -> Block | None:
    """Unsilence while silenced; else one Silence button per duration on an open incident."""
    if not view.silence_durations:
        return None
    if view.silence is not None:
        buttons = [_button(":bell: Unsilence", ACTION_UNSILENCE, str(incident.id))]
    elif incident.status != IncidentStatus.RESOLVED:
        buttons = [
            _button(
                f":no_bell: Silence {duration}",
                f"{ACTION_SILENCE}_{index}",
                silence_value(incident.id, duration),
            )
            for index, duration in enumerate(view.silence_durations)
        ]
    else:
        return None
    return ActionsBlock(elements=buttons, block_id=SILENCE_ACTIONS_BLOCK)


def oncall_blocks(incident: IncidentOut, view: OnCallView) -> list[Block]:
    """Who was paged and why, the silence the group is under, and the silence controls."""
    blocks: list[Block] = []
    if view.page is not None and incident.status != IncidentStatus.RESOLVED:
        blocks.append(_context(paged_line(view.page)))
    if view.silence is not None:
        blocks.append(_context(silenced_line(view.silence)))
    controls = silence_controls(incident, view)
    if controls is not None:
        blocks.append(controls)
    return blocks


def _firing_for(incident: IncidentOut, now: datetime | None) -> str:
    if incident.resolved_at is not None:
        end, verb = incident.resolved_at, "fired for"
    else:
        end, verb = now or datetime.now(UTC), "firing for"
    return f"{verb} {age_text(_epoch(end) - _epoch(incident.started_at))}"


def age_text(seconds: float) -> str:
    """How long, for people: "under a minute", "14 min", "2 h 5 min", "3 days"."""
    minutes = int(max(0.0, seconds) // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} days"


# ---------------------------------------------------------------------- RCA card


def _is_offline(analysis: Analysis) -> bool:
    return analysis.execution_status == ExecutionStatus.RECOVERED_FALLBACK


def _evidence_blocks(evidence: Sequence[EvidenceItem]) -> list[Block]:
    logs = [e for e in evidence if e.kind == "log"]
    metrics = [e for e in evidence if e.kind == "metric"]
    blocks: list[Block] = []
    if logs:
        shown = logs[:LOG_EVIDENCE_SHOWN]
        lines = [
            _code_safe(truncate(_one_line(f"[{e.ref}] {e.text}"), EVIDENCE_LINE_MAX)) for e in shown
        ]
        sources = sorted({e.source for e in shown})
        head = f"*Key log lines* ({escape(', '.join(sources))[:200]})\n```\n"
        tail = "\n```"
        code, omitted = _pack(
            lines,
            SECTION_TEXT_MAX - len(head) - len(tail) - 60,  # room for the note below
            "…{n} more",
            extra=len(logs) - len(shown),
        )
        if omitted:  # the note goes under the code block, not inside it
            code = code.rsplit("\n", 1)[0]
        text = head + code + tail
        if omitted:
            text += f"\n_…and {omitted} more log line{'s' if omitted != 1 else ''}_"
        blocks.append(_section(text))
    if metrics:
        blocks.append(
            _readings_section(
                "*Key metrics*",
                metrics,
                METRIC_EVIDENCE_SHOWN,
                "metric readings",
                metric_line,
            )
        )
    findings = [e for e in evidence if e.kind == "kubernetes"]
    if findings:
        blocks.append(
            _readings_section("*Cluster findings*", findings, CLUSTER_EVIDENCE_SHOWN, "findings")
        )
    return blocks


def metric_line(item: EvidenceItem) -> str:
    """A metric reading by its short name (`promql.short_metric`) and its numbers; an item
    stored before readings were kept structured is shortened from its text."""
    if item.metric is None:
        return metric_reading_text(item.text)
    return f"{short_metric(item.metric.query, item.metric.labels)} {reading_values(item.metric)}"


def _readings_section(
    title: str,
    items: Sequence[EvidenceItem],
    shown: int,
    noun: str,
    text_of: Callable[[EvidenceItem], str] = lambda e: e.text,
) -> Block:
    """`title`, then `• *source* text `ref`` per item, the rest counted."""
    lines = [
        f"• *{escape(truncate(e.source, 80))}* "
        f"{escape(truncate(_one_line(text_of(e)), EVIDENCE_LINE_MAX))} "
        f"`{escape(e.ref[:40])}`"
        for e in items[:shown]
    ]
    text, _ = _pack(
        [title, *lines],
        SECTION_TEXT_MAX,
        "_…and {n} more " + noun + "_",
        extra=len(items) - len(lines),
    )
    return _section(text)


def _attempts_context(analysis: Analysis) -> list[str]:
    parts = [f"provider *{escape(analysis.provider)}*"]
    if analysis.model:
        parts.append(f"model `{escape(truncate(analysis.model, 80))}`")
    if analysis.attempts:
        failed = [a for a in analysis.attempts if not a.ok]
        total_ms = sum(a.elapsed_ms for a in analysis.attempts)
        parts.append(
            f"{len(analysis.attempts)} attempt{'s' if len(analysis.attempts) != 1 else ''}"
            f" ({len(failed)} failed, {total_ms / 1000:.1f}s)"
        )
        if failed and failed[-1].error:
            parts.append(f"last error: {escape(truncate(_one_line(failed[-1].error), 200))}")
    parts.append(f"status `{analysis.execution_status.value}`")
    if analysis.prompt_tokens:
        parts.append(f"{analysis.prompt_tokens:,} prompt tokens")
    if analysis.created_at is not None:
        parts.append(slack_date(analysis.created_at))
    return parts


def rca_card(
    incident: IncidentOut, analysis: Analysis, *, public_url: str | None = None
) -> tuple[str, list[Block]]:
    """The root-cause analysis, posted in the incident's thread: (fallback text, blocks).
    `public_url` (`server.public_url`) makes the "Seen before" incidents links."""
    offline = _is_offline(analysis)
    failed = analysis.execution_status == ExecutionStatus.FAILED
    prefix = "Offline analysis" if offline else "Root cause"
    fallback = _fallback(
        f"{prefix} for #{incident.id} ({analysis.confidence_score}% confidence): "
        f"{truncate(_one_line(analysis.root_cause), SUMMARY_MAX)}"
    )
    blocks: list[Block] = []
    if offline and analysis.set_aside is not None:
        aside = analysis.set_aside
        blocks.append(
            _section(
                ":warning: *Offline analysis — the model's answer was set aside.* It said "
                f"“{escape(truncate(_one_line(aside.root_cause), 300))}” "
                f"({aside.confidence_score}%), but {escape(aside.why)}. This root cause comes "
                "from Firebreak's rule-based offline analyzer instead."
            )
        )
    elif offline:
        blocks.append(
            _section(
                ":warning: *Offline analysis — the LLM was unavailable.* This root cause comes "
                "from Firebreak's rule-based offline analyzer, not from the language model. "
                "Treat it as a starting point and use *Re-investigate* when the LLM is back."
            )
        )
    elif failed:
        blocks.append(
            _section(
                ":x: *The analysis failed.* What follows is incomplete; use *Re-investigate* "
                "to try again."
            )
        )
    blocks.append(_header(f":mag: Root-cause analysis · #{incident.id} {incident.title}"))
    blocks.append(_section(f"*Root cause*\n{escape(analysis.root_cause)}"))
    if analysis.dissent is not None:
        blocks.append(
            _section(
                ":scales: *Firebreak's own rules point elsewhere* (the model's answer agrees "
                "with none of their leads, so its confidence is capped):\n"
                f"{escape(truncate(analysis.dissent, 1500))}"
            )
        )
    blocks.append(
        _section(
            "",
            fields=[
                f"*Confidence*\n{_confidence(analysis.confidence_score)}",
                f"*Execution*\n{_execution_label(analysis)}",
            ],
        )
    )
    blocks.append(_section(f"*Reasoning*\n{escape(truncate(analysis.reasoning, REASONING_MAX))}"))
    blocks.append(_section(f":adhesive_bandage: *Mitigation*\n{escape(analysis.mitigation)}"))
    blocks.append(_section(f":shield: *Prevention*\n{escape(analysis.prevention)}"))
    blocks.append(_section(f":point_right: *Recommendation*\n{escape(analysis.recommendation)}"))
    evidence = _evidence_blocks(analysis.evidence)
    if evidence:
        blocks.append(DividerBlock())
        blocks.extend(evidence)
    if analysis.remediation is not None:
        action = escape(truncate(analysis.remediation.action, 100))
        blocks.append(
            _context(f":hammer_and_wrench: Proposed remediation `{action}`: see the next message.")
        )
    if analysis.history:
        blocks.append(_section(seen_before_text(analysis.history, public_url)))
    blocks.append(_context(*_attempts_context(analysis), *_follow_ups(analysis)))
    blocks.extend(feedback_blocks(incident.id, analysis))
    return fallback, _bounded(blocks)


def _follow_ups(analysis: Analysis) -> list[str]:
    """`3 follow-up queries`: the tool calls the reasoning agent made before it answered."""
    count = analysis.tool_calls
    return [f"{count} follow-up quer{'y' if count == 1 else 'ies'}"] if count else []


# ---------------------------------------------------------------------- feedback


def feedback_value(incident_id: int, run_id: str) -> str:
    """The Correct / Wrong buttons' value (and the modal's metadata): the incident and the
    run whose analysis they judge, so a click on an older reply is recognised as such."""
    return json.dumps({"incident_id": incident_id, "run_id": run_id}, separators=(",", ":"))


def parse_feedback_value(value: str) -> tuple[int, str]:
    """Inverse of ``feedback_value``; ValueError for anything else."""
    try:
        data = json.loads(value)
        incident_id, run_id = data["incident_id"], data["run_id"]
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"not a feedback value: {value[:40]!r}") from exc
    if not isinstance(incident_id, int) or not isinstance(run_id, str) or not run_id:
        raise ValueError(f"not a feedback value: {value[:40]!r}")
    return incident_id, run_id


def verdict_line(feedback: Feedback) -> str:
    """ "✅ Confirmed by <@U…>" or "❌ Marked wrong by <@U…>. Actual cause: …"."""
    if feedback.verdict is Verdict.CORRECT:
        return f":white_check_mark: Confirmed by {_who(feedback.by)}"
    cause = escape(truncate(_one_line(feedback.actual_cause or ""), SUMMARY_MAX))
    return f":x: Marked wrong by {_who(feedback.by)}. Actual cause: _{cause}_"


def feedback_blocks(incident_id: int, analysis: Analysis) -> list[Block]:
    """ "Was this right?" with Correct / Wrong, or the verdict given (the buttons stay, so a
    verdict can be changed). None for an analysis with no run (no reply to judge it from) or
    one that failed (nothing to judge)."""
    if analysis.run_id is None or analysis.execution_status == ExecutionStatus.FAILED:
        return []
    said = analysis.feedback
    value = feedback_value(incident_id, analysis.run_id)
    return [
        _section(verdict_line(said) if said else ":thinking_face: *Was this right?*"),
        ActionsBlock(
            block_id=FEEDBACK_ACTIONS_BLOCK,
            elements=[
                _button(":white_check_mark: Correct", ACTION_FEEDBACK_CORRECT, value),
                _button(":x: Wrong", ACTION_FEEDBACK_WRONG, value),
            ],
        ),
    ]


def actual_cause_modal(incident_id: int, run_id: str, root_cause: str) -> View:
    """The Wrong button's form: what the analysis said, and "What was the actual cause?"."""
    said = escape(truncate(_one_line(root_cause), SUMMARY_MAX))
    return View(
        type="modal",
        callback_id=VIEW_ACTUAL_CAUSE,
        private_metadata=feedback_value(incident_id, run_id),
        title=PlainTextObject(text="Was this right?"),
        submit=PlainTextObject(text="Record"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            _section(f"Incident #{incident_id}: the analysis said _{said}_"),
            InputBlock(
                block_id=CAUSE_BLOCK,
                label=PlainTextObject(text="What was the actual cause?"),
                element=PlainTextInputElement(
                    action_id=CAUSE_INPUT, multiline=True, max_length=MAX_CAUSE
                ),
            ),
        ],
    )


def submitted_cause(view: dict[str, Any]) -> str:
    """The text typed into ``actual_cause_modal`` (a ``view_submission``'s ``view``), stripped."""
    values = ((view.get("state") or {}).get("values") or {}).get(CAUSE_BLOCK) or {}
    return str((values.get(CAUSE_INPUT) or {}).get("value") or "").strip()


# ---------------------------------------------------------------------- incident memory

HISTORY_SHOWN = 3
RELATED_SHOWN = 10


def _ago(at: datetime, now: datetime) -> str:
    seconds = max(0.0, (now - at).total_seconds())
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} min ago"
    if seconds < 2 * 86400:
        hours = round(seconds / 3600)
        return f"{hours} hour{'s' if hours != 1 else ''} ago"
    return f"{round(seconds / 86400)} days ago"


def _incident_ref(incident_id: int, public_url: str | None) -> str:
    label = f"#{incident_id}"
    if not public_url:
        return label
    return _link(f"{public_url.rstrip('/')}/incidents/{incident_id}", label)


def seen_before_line(item: HistoryRef, public_url: str | None, now: datetime) -> str:
    """ "#12, 3 days ago, resolved by @alice in 14 min (rollback)"."""
    parts = [_incident_ref(item.incident_id, public_url), _ago(item.created_at, now)]
    if item.resolved_at is not None:
        resolved = f"resolved by {_who(item.resolved_by)}"
        if item.resolve_s is not None:
            resolved += f" in {duration_text(item.resolve_s)}"
        if item.resolution:
            resolved += f" ({escape(truncate(_one_line(item.resolution), 120))})"
        parts.append(resolved)
    line = ", ".join(parts)
    if item.root_cause:
        line += f" — _{escape(truncate(_one_line(item.root_cause), 200))}_"
        if item.confirmed is not None:
            line += " (confirmed)" if item.confirmed else " (corrected by a person)"
    return line


def seen_before_text(
    history: Sequence[HistoryRef], public_url: str | None, now: datetime | None = None
) -> str:
    """The RCA card's "Seen before" lines, one per earlier incident like this one."""
    now = now or datetime.now(UTC)
    lines = [seen_before_line(item, public_url, now) for item in history[:HISTORY_SHOWN]]
    if len(lines) == 1:
        return f":repeat: *Seen before:* {lines[0]}"
    return ":repeat: *Seen before:*\n" + "\n".join(f"• {line}" for line in lines)


def related_line(related: Sequence[int]) -> str:
    """The incident card's "Related: #41, #42" (incidents correlated with this one)."""
    shown = ", ".join(f"#{i}" for i in related[:RELATED_SHOWN])
    more = f" and {len(related) - RELATED_SHOWN} more" if len(related) > RELATED_SHOWN else ""
    return f":link: Related: {shown}{more}"


POSTMORTEM_MESSAGE_MAX = MarkdownBlock.text_max_length  # longer drafts go out as a file


def postmortem_message(incident_id: int, markdown: str) -> Message | None:
    """A postmortem draft as one thread message (a Markdown block), or None when it is too
    long for one (it is then shared as a file). The draft quotes alert labels, notes, log
    lines and the model's words, and Slack reads `<!channel>` or `<@U…>` in a Markdown block
    too: it is escaped like every other text Firebreak shows."""
    text = escape(markdown)
    if len(text) > POSTMORTEM_MESSAGE_MAX:
        return None
    fallback = _fallback(f"Postmortem draft for incident #{incident_id}")
    return fallback, [MarkdownBlock(text=text)]


def postmortem_comment(incident_id: int) -> str:
    return f":page_facing_up: Postmortem draft for incident #{incident_id} (Markdown)."


def _confidence(score: int) -> str:
    filled = max(0, min(10, round(score / 10)))
    return f"{score}% " + "▰" * filled + "▱" * (10 - filled)


def _execution_label(analysis: Analysis) -> str:
    if analysis.execution_status == ExecutionStatus.RECOVERED_FALLBACK and analysis.set_aside:
        return ":warning: offline fallback (the model's answer was unsupported)"
    return {
        ExecutionStatus.COMPLETED: ":white_check_mark: completed",
        ExecutionStatus.RECOVERED_FALLBACK: ":warning: offline fallback (LLM unavailable)",
        ExecutionStatus.FAILED: ":x: failed",
    }[ExecutionStatus(analysis.execution_status)]


# ---------------------------------------------------------------------- remediation


@dataclass(frozen=True)
class ApprovalTarget:
    """What an Approve / Reject button decides: the run whose proposal it shows and that
    proposal's digest (`RemediationProposal.digest`). None where a button predates them."""

    incident_id: int
    approval: str | None
    digest: str | None


def remediation_value(incident_id: int, approval: str, proposal: RemediationProposal) -> str:
    """The Approve / Reject buttons' value, binding the click to the proposal shown:
    ``{"incident_id": 7, "approval": "inv-7-…", "digest": "…"}``."""
    value = {"incident_id": incident_id, "approval": approval, "digest": proposal.digest()}
    return json.dumps(value, separators=(",", ":"))


def parse_remediation_value(value: str) -> ApprovalTarget:
    """Inverse of ``remediation_value``; a value without a run or digest (``"7"``, or an older
    ``{"incident_id": 7, "action": …}``) names only its incident. ValueError when malformed."""
    try:
        data = json.loads(value)
    except ValueError:
        data = value.partition(":")[0]
    if not isinstance(data, dict):
        return ApprovalTarget(int(data), None, None)
    approval, digest = data.get("approval"), data.get("digest")
    return ApprovalTarget(
        int(data["incident_id"]),
        approval if isinstance(approval, str) else None,
        digest if isinstance(digest, str) else None,
    )


def remediation_blocks(
    incident_id: int,
    proposal: RemediationProposal,
    *,
    approval: str,
    decision: str | None = None,
    approve_later_s: float | None = None,
) -> list[Block]:
    """The proposal with Approve / Reject buttons (and "Approve, run in N min" when
    ``approve_later_s`` is given); with ``decision`` (e.g. "Approved by <@U1>") the buttons are
    replaced by that line."""
    params = [
        f"`{escape(truncate(p.name, 60))}` = `{escape(truncate(p.value, 200))}`"
        for p in proposal.parameters
    ]
    lines = [
        f":hammer_and_wrench: *Proposed remediation:* `{escape(truncate(proposal.action, 100))}`",
        *params[:15],
    ]
    if len(params) > 15:
        lines.append(f"…and {len(params) - 15} more parameters")
    lines.append(f"_Why:_ {escape(_one_line(proposal.reason))}")
    text, _ = _pack(lines, SECTION_TEXT_MAX)
    blocks: list[Block] = [_section(text)]
    if decision is not None:
        blocks.append(_context(decision))
        return blocks
    value = remediation_value(incident_id, approval, proposal)
    blocks.append(
        ActionsBlock(
            block_id=REMEDIATION_ACTIONS_BLOCK,
            elements=[
                _button(
                    ":white_check_mark: Approve",
                    ACTION_REMEDIATION_APPROVE,
                    value,
                    style="primary",
                    confirm=_confirm(
                        "Run this action?",
                        f"Run `{escape(truncate(proposal.action, 100))}` for incident "
                        f"#{incident_id}?",
                        "Run it",
                    ),
                ),
                *(
                    [
                        _button(
                            f":alarm_clock: Approve, run in {approve_later_s / 60:g} min",
                            ACTION_REMEDIATION_APPROVE_LATER,
                            value,
                        )
                    ]
                    if approve_later_s
                    else []
                ),
                _button(":no_entry_sign: Reject", ACTION_REMEDIATION_REJECT, value, style="danger"),
            ],
        )
    )
    blocks.append(_context("Runs only after approval; only allowlisted actions can run."))
    return blocks


def remediation_card(
    incident_id: int,
    proposal: RemediationProposal,
    *,
    approval: str,
    decision: str | None = None,
    approve_later_s: float | None = None,
) -> tuple[str, list[Block]]:
    """A remediation proposal as its own thread message: (fallback text, blocks)."""
    state = f" — {decision}" if decision else " — approve or reject"
    fallback = _fallback(f"Proposed remediation for #{incident_id}: {proposal.action}{state}")
    blocks = remediation_blocks(
        incident_id,
        proposal,
        approval=approval,
        decision=decision,
        approve_later_s=approve_later_s,
    )
    return fallback, _bounded(blocks)


# ---------------------------------------------------------------------- escalation, lists


def escalation_page_text(
    level: int,
    targets: list[str],
    reasons: dict[str, str] | None = None,
    unstaffed: Sequence[str] = (),
) -> str:
    """The thread message that pages an escalation level: mentions that notify."""
    reasons = reasons or {}
    who = " ".join(
        mention(t) + (f" ({escape(reasons[t])})" if reasons.get(t) else "") for t in targets
    )
    if not who and unstaffed:
        return f":warning: *Escalation level {level}*: {_unstaffed(unstaffed)}: nobody was paged."
    text = (
        f":mega: *Escalation level {level}*: {who or '_(nobody configured)_'} — please take a "
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
    title = escape(truncate(" ".join(notice.title.split()), 200))
    why = f" ({escape(notice.reason)})" if notice.reason else ""
    return (
        f":mega: You are paged for incident #{notice.incident_id} (escalation level "
        f"{notice.level}){why}: {title}. Please acknowledge it in its thread."
    )


def reminder_text(incident_id: int, notice: Reminder) -> str:
    return (
        f":alarm_clock: *Reminder*: incident #{incident_id} was acknowledged by "
        f"{mention(notice.acknowledged_by or 'someone')} {slack_date(notice.acknowledged_at)} "
        "and is not resolved yet."
    )


# ---------------------------------------------------------------------- remediation runs


SUPERSEDED = (
    ":fast_forward: Superseded by a newer proposal in this thread; this one can no longer run."
)


def remediation_decision_text(notice: RemediationDecided) -> str:
    verb = "Approved" if notice.approved else "Rejected"
    when = f"; runs in {notice.delay_s / 60:g} min" if notice.approved and notice.delay_s else ""
    return f"{verb} by {mention(notice.actor)}{when}"


def remediation_scheduled_text(notice: RemediationScheduled) -> str:
    return (
        f":hourglass_flowing_sand: `{escape(notice.action)}` approved by "
        f"{mention(notice.approved_by)} will run {slack_date(notice.run_at)} "
        f"(in {duration_text(notice.delay_s)})."
    )


def remediation_finished_text(notice: RemediationFinished) -> str:
    name = f"`{escape(notice.action)}`"
    if notice.skipped:
        return f":warning: Remediation {name} was not run: {escape(notice.skipped)}."
    verdict = "succeeded :white_check_mark:" if notice.ok else "failed :x:"
    text = f":gear: Remediation {name} {verdict}"
    if notice.output:
        text += f"\n```{escape(notice.output).replace('```', '` ` `')}```"
    verify = notice.verify
    if verify and notice.verify_at:
        text += (
            f"\nVerifying {slack_date(notice.verify_at)}: `{escape(verify['promql'])}` "
            f"{escape(verify['op'])} {verify['threshold']:g}"
        )
    return text


def remediation_verified_text(notice: RemediationVerified) -> str:
    icon = ":white_check_mark:" if notice.ok else ":x:"
    shown = "no data" if notice.value is None else f"{notice.value:g}"
    text = (
        f"{icon} Verification of `{escape(notice.action)}` "
        f"{'passed' if notice.ok else 'failed'}: `{escape(notice.promql)}` is {shown} "
        f"(wanted {escape(notice.op)} {notice.threshold:g})"
    )
    if notice.error:
        text += f" — {escape(truncate(notice.error, 300))}"
    return text


def duration_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:g} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------------- notices


Message = tuple[str, list[Block]]


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
    raise TypeError(f"no Slack rendering for {type(notice).__name__}")


def _said(text: str) -> Message:
    return text, []


PURPOSES = {
    "rca": "rca",
    "page": "page",
    "paged_dm": "dm",
    "reminder": "reminder",
}


def notice_purpose(notice: Notice) -> str:
    """The short name a delivered message is kept under (`slack_messages.purpose`)."""
    return notice.key or PURPOSES.get(notice.kind, "remediation")


def timeline_blocks(events: list[TimelineEventOut]) -> list[Block]:
    """The incident timeline for ``/incident timeline ID`` (latest events kept when long)."""
    if not events:
        return [_section("_No timeline events yet._")]
    lines = []
    for event in events:
        emoji = EVENT_EMOJI.get(event.type, ":small_blue_diamond:")
        actor = _who(event.actor) if event.actor else ""
        message = escape(truncate(_one_line(event.message), 400))
        line = f"{emoji} {slack_date(event.at, '{time_secs}')} *{escape(event.type)}*"
        if actor:
            line += f" · {actor}"
        if message:
            line += f" — {message}"
        lines.append(line)
    blocks = [_header(f":spiral_note_pad: Timeline ({len(events)} events)")]
    blocks += _pack_sections(
        lines,
        max_sections=TIMELINE_SECTIONS_MAX,
        more="_…{n} earlier events not shown_",
        keep="last",
    )
    return _bounded(blocks)


def incident_list_blocks(incidents: list[IncidentOut]) -> list[Block]:
    """One line per incident for ``/incident list``."""
    if not incidents:
        return [_section(":tada: No open incidents.")]
    lines = [
        f"{STATUS_EMOJI[IncidentStatus(i.status)]} *#{i.id}* "
        f"{escape(truncate(_one_line(i.title), 120))} · {severity_label(i.severity)} · "
        f"{escape(truncate(i.service, 60))} · {IncidentStatus(i.status).value} · "
        f"since {slack_date(i.created_at)}"
        for i in incidents
    ]
    blocks = [_header(f"Incidents ({len(incidents)})")]
    blocks += _pack_sections(
        lines, max_sections=LIST_SECTIONS_MAX, more="_…and {n} more incidents_"
    )
    return _bounded(blocks)


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
        ("declare TITLE", "open an incident by hand"),
        ("oncall [SCHEDULE]", "who is on call now, until when, and who is next"),
        ("silence ID DURATION", "silence the incident's alerts in Alertmanager (e.g. 4h)"),
        ("unsilence ID", "lift that silence"),
    ]
    body = "\n".join(f"• `{c} {usage}` — {what}" for usage, what in rows)
    return f"*Firebreak* — usage:\n{body}\nMention me in an incident thread to ask about it."


# ---------------------------------------------------------------------- short replies


def resolution_text(incident_id: int, actor: str) -> str:
    """The thread reply when an incident resolves."""
    if actor == "alertmanager":
        return (
            f"{STATUS_EMOJI[IncidentStatus.RESOLVED]} Incident #{incident_id} resolved: "
            "every alert of the group has cleared in Alertmanager."
        )
    emoji = STATUS_EMOJI[IncidentStatus.RESOLVED]
    return f"{emoji} Incident #{incident_id} resolved by {_who(actor)}."


def answer_text(asker: str, question: str, answer: str) -> str:
    """A thread answer to ``@firebreak <question>`` (question quoted, answer escaped)."""
    quoted = escape(truncate(_one_line(question), 300))
    body = escape(truncate(answer.strip() or "_(no answer)_", SECTION_TEXT_MAX - 400))
    return f"{_who(asker)} asked: _{quoted}_\n{body}"


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


# ---------------------------------------------------------------------- terminal rendering

_TERMINAL_EMOJI = {
    ":rotating_light:": "🚨",
    ":eyes:": "👀",
    ":white_check_mark:": "✅",
    ":red_circle:": "🔴",
    ":large_orange_circle:": "🟠",
    ":large_blue_circle:": "🔵",
    ":white_circle:": "⚪",
    ":bulb:": "💡",
    ":mag:": "🔍",
    ":mega:": "📣",
    ":warning:": "⚠️",
    ":x:": "❌",
    ":hammer_and_wrench:": "🛠️",
    ":no_entry_sign:": "🚫",
    ":bell:": "🔔",
    ":memo:": "📝",
    ":repeat:": "🔁",
    ":alarm_clock:": "⏰",
    ":no_bell:": "🔕",
    ":gear:": "⚙️",
    ":+1:": "👍",
    ":tada:": "🎉",
    ":spiral_note_pad:": "🗒️",
    ":card_index_dividers:": "🗂️",
    ":adhesive_bandage:": "🩹",
    ":shield:": "🛡️",
    ":point_right:": "👉",
    ":small_blue_diamond:": "🔹",
    ":globe_with_meridians:": "🌐",
    ":chart_with_upwards_trend:": "📈",
    ":link:": "🔗",
    ":page_facing_up:": "📄",
    ":ballot_box_with_check:": "☑️",
    ":thinking_face:": "🤔",
}
_SHORTCODE = re.compile(r":[a-z0-9_+\-]+:")
# One pass over mrkdwn: code first (nothing inside it is markup), then <…> entities, then the
# emphasis marks, which Slack honours only at word boundaries (`pool_in_use` is no italics).
# The lazy spans are bounded: an opening mark without its closing one is looked for that far
# only, so a line of a thousand `_a ` costs a thousand short scans, not each to the line's end.
_TOKEN = re.compile(
    r"(?P<pre>```(?P<pre_body>.{0,4000}?)```)"
    r"|(?P<code>`(?P<code_body>[^`\n]{1,1000}+)`)"
    r"|<(?P<angle>[^<>\n]{1,1000}+)>"
    r"|(?P<mark>(?<![\w*_~])(?P<sign>[*_~])(?=\S)(?P<inner>[^\n]{1,300}?)(?<=\S)(?P=sign)"
    r"(?![\w*_~]))",
    re.DOTALL,
)
_STYLE = {"*": "bold", "_": "italic", "~": "strike"}
_MENTION_STYLE = "bold magenta"
_CODE_STYLE = "cyan"
TERMINAL_URL_MAX = 60  # longer URLs (a graph's encoded PromQL) become just their label


def mrkdwn_to_text(text: str, *, markup: bool = False) -> str:
    """Slack markup for the terminal: links, mentions, dates, entities and common emoji
    resolved. Plain (``markup=False``) keeps the emphasis and code marks as typed; with
    ``markup=True`` the result is rich console markup: bold, italics, strike, code styled,
    links clickable where the terminal can, every literal ``[`` escaped."""
    out: list[str] = []
    position = 0
    for found in _TOKEN.finditer(text):
        out.append(_literal(text[position : found.start()], markup))
        out.append(_token(found, markup))
        position = found.end()
    out.append(_literal(text[position:], markup))
    return "".join(out)


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _literal(text: str, markup: bool, *, emoji: bool = True) -> str:
    if emoji:
        text = _SHORTCODE.sub(lambda m: _TERMINAL_EMOJI.get(m.group(0), m.group(0)), text)
    text = _unescape(text)
    return rich_escape(text) if markup else text


def _styled(text: str, style: str, markup: bool) -> str:
    return f"[{style}]{text}[/{style}]" if markup and text else text


def _token(found: re.Match[str], markup: bool) -> str:
    if found.group("pre") is not None:
        body = _literal(found.group("pre_body"), markup, emoji=False)
        return _styled(body, _CODE_STYLE, True) if markup else f"```{body}```"
    if found.group("code") is not None:
        body = _literal(found.group("code_body"), markup, emoji=False)
        return _styled(body, _CODE_STYLE, True) if markup else f"`{body}`"
    if found.group("angle") is not None:
        return _angle(found.group("angle"), markup)
    sign, inner = found.group("sign"), mrkdwn_to_text(found.group("inner"), markup=markup)
    return _styled(inner, _STYLE[sign], True) if markup else f"{sign}{inner}{sign}"


def _angle(inner: str, markup: bool) -> str:
    """What Slack shows for ``<…>``: a date's fallback, a link, a mention."""
    target, _, label = inner.partition("|")
    if target.startswith("!date^"):
        return _literal(label or target, markup)
    if target.startswith(("http://", "https://")):
        return _link_text(_unescape(target), mrkdwn_to_text(label, markup=markup), markup)
    if target.startswith("@"):
        return _styled(_literal("@" + target[1:], markup), _MENTION_STYLE, markup)
    if target.startswith("!subteam^"):
        return _styled(_literal("@" + target[9:], markup), _MENTION_STYLE, markup)
    if target.startswith("#"):
        return _styled(_literal("#" + (label or target[1:]), markup), _MENTION_STYLE, markup)
    if target in ("!here", "!channel", "!everyone"):
        return _styled(_literal("@" + target[1:], markup), _MENTION_STYLE, markup)
    return _literal(f"<{inner}>", markup)


def _link_text(url: str, label: str, markup: bool) -> str:
    """``label (url)`` for a short URL, ``label ↗`` for a long one; clickable with markup."""
    if not label:  # a bare <url>
        shown = rich_escape(url) if markup else url
        return f"[link={_markup_url(url)}]{shown}[/link]" if markup else shown
    shown = url if len(url) <= TERMINAL_URL_MAX else ""
    tail = f" ({rich_escape(shown) if markup else shown})" if shown else " ↗"
    if not markup:
        return label + tail
    return f"[link={_markup_url(url)}]{label}{tail}[/link]"


def _markup_url(url: str) -> str:
    """A URL inside rich's ``[link=…]`` tag, which ends at the first ``]`` and admits no ``[``."""
    return url.replace("[", "%5B").replace("]", "%5D")


def _text(obj: Any, markup: bool) -> str:
    if isinstance(obj, dict):
        return mrkdwn_to_text(str(obj.get("text", "")), markup=markup)
    return ""


def _field(obj: Any, markup: bool) -> str:
    """``*Label*\nvalue`` as ``  Label: value``."""
    raw = str(obj.get("text", "")) if isinstance(obj, dict) else ""
    label, _, value = raw.partition("\n")
    label = mrkdwn_to_text(label.strip().strip("*"), markup=markup)
    if not value:
        return f"  {label}"
    return f"  {_styled(label, 'bold', markup)}: {mrkdwn_to_text(value, markup=markup)}"


def _button_text(element: dict[str, Any], markup: bool) -> str:
    label = _text(element.get("text"), markup)
    url = element.get("url")
    if url:
        label = _link_text(str(url), label, markup)
    return f"{rich_escape('[') if markup else '['} {label} ]"


def render_text(
    blocks: Iterable[Block | dict[str, Any]], *, width: int = 72, markup: bool = False
) -> str:
    """Blocks for the terminal: plain text, or rich console markup with ``markup=True``."""
    out: list[str] = []
    for block in blocks:
        data = block.to_dict() if isinstance(block, Block) else block
        kind = data.get("type")
        if kind == "header":
            title, plain = _text(data.get("text"), markup), _text(data.get("text"), False)
            out += [_styled(title, "bold", markup), "=" * min(width, max(len(plain), 3))]
        elif kind == "section":
            if data.get("text"):
                out.append(_text(data["text"], markup))
            out += [_field(f, markup) for f in data.get("fields") or []]
        elif kind == "context":
            out.append("  " + " · ".join(_text(e, markup) for e in data.get("elements") or []))
        elif kind == "divider":
            out.append("-" * width)
        elif kind == "markdown":
            out.append(str(data.get("text", "")))
        elif kind == "actions":
            elements = [e for e in data.get("elements") or [] if e.get("text")]
            out.append(" ".join(_button_text(e, markup) for e in elements))
        elif data.get("text"):
            out.append(_text(data["text"], markup))
    return "\n".join(out)


__all__ = [
    "ACTION_ACK",
    "ACTION_ESCALATE",
    "ACTION_FEEDBACK_CORRECT",
    "ACTION_FEEDBACK_WRONG",
    "ACTION_INVESTIGATE",
    "ACTION_REMEDIATION_APPROVE",
    "ACTION_REMEDIATION_REJECT",
    "ACTION_RESOLVE",
    "ACTION_SILENCE",
    "ACTION_UNSILENCE",
    "INCIDENT_ACTIONS_BLOCK",
    "MAX_BLOCKS",
    "REMEDIATION_ACTIONS_BLOCK",
    "SILENCE_ACTIONS_BLOCK",
    "OnCallView",
    "escalation_page_text",
    "escape",
    "feedback_blocks",
    "help_text",
    "incident_actions",
    "incident_card",
    "incident_list_blocks",
    "mention",
    "mrkdwn_to_text",
    "parse_remediation_value",
    "rca_card",
    "remediation_blocks",
    "remediation_card",
    "remediation_value",
    "render_text",
    "slack_date",
    "timeline_blocks",
    "truncate",
]
