"""The incident's one card in its channel, kept current with `chat.update`: title, facts,
the root cause in a line, the alerts, who was paged, the silence, and the buttons."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, PlainTextObject

from firebreak.bot.messages.blocks import (
    SECTION_TEXT_MAX,
    STATUS_EMOJI,
    SUMMARY_MAX,
    bounded,
    button,
    confirm_dialog,
    context,
    epoch,
    escape,
    fallback,
    header,
    link,
    one_line,
    pack,
    section,
    severity_label,
    slack_date,
    status_label,
    who,
)
from firebreak.bot.messages.escalation import paged_line
from firebreak.bot.messages.feedback import verdict_line
from firebreak.bot.messages.rca import is_offline
from firebreak.bot.messages.silences import silence_controls, silenced_line
from firebreak.incidents.silences import group_labels
from firebreak.store.escalations import LastPage
from firebreak.store.schemas import AlertOut, IncidentOut, IncidentStatus
from firebreak.store.silences import ActiveSilence
from firebreak.tools.text import duration, truncate

# action_ids the interactivity handlers listen on.
ACTION_ACK = "incident_ack"
ACTION_ESCALATE = "incident_escalate"
ACTION_RESOLVE = "incident_resolve"
ACTION_INVESTIGATE = "incident_investigate"
ACTION_OPEN_PAGE = "incident_open_page"  # a URL button: Slack still sends block_actions
INCIDENT_ACTIONS_BLOCK = "incident_actions"

ALERTS_SHOWN = 5
RELATED_SHOWN = 10


@dataclass(frozen=True)
class OnCallView:
    """What the card says about paging and silences (read by the outbox from
    store/escalations.py and store/silences.py).
    `silence_durations` empty: Alertmanager is not configured, so no silence controls."""

    page: LastPage | None = None
    silence: ActiveSilence | None = None
    silence_durations: Sequence[str] = ()


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
        head += " — " + escape(truncate(one_line(summary), 200))
    if alert.generator_url:
        head += " · " + link(alert.generator_url, "graph")
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
    return [link(alerts, "Open in Alertmanager"), link(silence, "Silence")]


def incident_actions(incident: IncidentOut) -> ActionsBlock:
    """Acknowledge / Escalate / Resolve / Re-investigate, as the incident's status allows."""
    value = str(incident.id)
    buttons: list[ButtonElement] = []
    if incident.status == IncidentStatus.TRIGGERED:
        buttons.append(button(":eyes: Acknowledge", ACTION_ACK, value, style="primary"))
    if incident.status != IncidentStatus.RESOLVED:
        buttons.append(
            button(
                ":mega: Escalate",
                ACTION_ESCALATE,
                value,
                confirm=confirm_dialog(
                    "Escalate?",
                    f"Page the next escalation level for incident #{incident.id}?",
                    "Escalate",
                ),
            )
        )
        buttons.append(
            button(
                ":white_check_mark: Resolve",
                ACTION_RESOLVE,
                value,
                style="danger",
                confirm=confirm_dialog(
                    "Resolve?", f"Mark incident #{incident.id} as resolved?", "Resolve"
                ),
            )
        )
    buttons.append(button(":mag: Re-investigate", ACTION_INVESTIGATE, value))
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
    title = one_line(incident.title) or f"Incident {incident.id}"
    text = fallback(
        f"{STATUS_EMOJI[status]} [{incident.severity.upper()}] #{incident.id} {title} — "
        f"{status.value} ({incident.service})"
    )
    blocks: list[Block] = [header(f"{STATUS_EMOJI[status]} #{incident.id} {title}")]

    view = oncall or OnCallView()
    alert_total = max(incident.alert_count, len(incident.alerts))
    alerts_field = f"*Alerts*\n{alert_total}"
    if incident.truncated_alerts:
        alerts_field += f" (+{incident.truncated_alerts} truncated by Alertmanager)"
    fields = [
        f"*Status*\n{status_label(status)}",
        f"*Severity*\n{severity_label(incident.severity)}",
        f"*Service*\n{escape(incident.service or 'unknown')}",
        alerts_field,
        f"*Escalation level*\n{escalation_text(incident.escalation_level, view.page)}",
        f"*Acknowledged by*\n{who(incident.acknowledged_by)}",
        f"*Started*\n{slack_date(incident.started_at)} ({_firing_for(incident, now)})",
    ]
    if incident.resolved_at is not None:
        fields.append(f"*Resolved*\n{slack_date(incident.resolved_at)}")
    blocks.append(section("", fields=fields))

    analysis = incident.analysis
    if analysis is not None:
        tag = " _(offline analysis)_" if is_offline(analysis) else ""
        blocks.append(
            section(
                f":bulb: *Root cause* ({analysis.confidence_score}% confidence){tag}: "
                f"{escape(truncate(one_line(analysis.root_cause), SUMMARY_MAX))}\n"
                "_Full analysis in the thread._"
                + (f"\n{verdict_line(analysis.feedback)}" if analysis.feedback else "")
            )
        )

    if incident.alerts:
        lines = [_alert_line(a) for a in incident.alerts[:ALERTS_SHOWN]]
        extra = alert_total - len(lines)
        if extra > 0:
            lines.append(f"…and {extra} more alert{'s' if extra != 1 else ''}")
        packed, _ = pack(lines, SECTION_TEXT_MAX)
        blocks.append(section(packed))

    if alertmanager_url:
        blocks.append(context(*_alertmanager_links(incident, alertmanager_url)))
    if incident.related:
        blocks.append(context(related_line(incident.related)))

    blocks.extend(oncall_blocks(incident, view))
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
    blocks.append(context(footer_text(incident)))
    return text, bounded(blocks)


FOOTER_LABELS_SHOWN = 4


def footer_text(incident: IncidentOut) -> str:
    """`Incident #7 · HighErrorRate · service=checkout`: the group as people read it (its
    alert name and the other labels it is grouped by), never Alertmanager's raw group key,
    which is routing syntax (`{}/{severity=~"…"}:{…}`)."""
    grouped = group_labels(incident.group_key, incident.labels)
    name = grouped.get("alertname") or incident.labels.get("alertname")
    if len(grouped) > FOOTER_LABELS_SHOWN + 1:  # not grouped by a few labels: all of them
        grouped = {}
    shown = [f"{k}={v}" for k, v in sorted(grouped.items()) if v and k != "alertname"]
    parts = [f"Incident #{incident.id}"]
    if name:
        parts.append(escape(truncate(name, 80)))
    if shown:
        parts.append(escape(truncate(", ".join(shown), 160)))
    return " · ".join(parts)


def escalation_text(level: int, page: LastPage | None) -> str:
    """`1 of 2 (payments)`; level 0 is `0 — not paged yet`, so a bare 0 is never read as
    "the first level"."""
    if level <= 0:
        return "0 — not paged yet"
    said = str(level)
    if page is not None and page.levels:
        said += f" of {page.levels}"
    if page is not None and page.policy:
        said += f" ({escape(truncate(page.policy, 60))})"
    return said


def oncall_blocks(incident: IncidentOut, view: OnCallView) -> list[Block]:
    """Who was paged and why, the silence the group is under, and the silence controls."""
    blocks: list[Block] = []
    if view.page is not None and incident.status != IncidentStatus.RESOLVED:
        blocks.append(context(paged_line(view.page)))
    if view.silence is not None:
        blocks.append(context(silenced_line(view.silence)))
    open_ = incident.status != IncidentStatus.RESOLVED
    controls = silence_controls(incident.id, open_, view.silence, view.silence_durations)
    if controls is not None:
        blocks.append(controls)
    return blocks


def _firing_for(incident: IncidentOut, now: datetime | None) -> str:
    if incident.resolved_at is not None:
        end, verb = incident.resolved_at, "fired for"
    else:
        end, verb = now or datetime.now(UTC), "firing for"
    seconds = epoch(end) - epoch(incident.started_at)
    return f"{verb} {'under a minute' if seconds < 60 else duration(seconds)}"


def related_line(related: Sequence[int]) -> str:
    """The incident card's "Related: #41, #42" (incidents correlated with this one)."""
    shown = ", ".join(f"#{i}" for i in related[:RELATED_SHOWN])
    more = f" and {len(related) - RELATED_SHOWN} more" if len(related) > RELATED_SHOWN else ""
    return f":link: Related: {shown}{more}"
