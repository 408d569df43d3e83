"""The root-cause analysis in the incident's thread: the cause, the reasoning, the evidence it
rests on (log lines, metric readings, cluster findings), earlier incidents like this one, and
the postmortem draft posted on request."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from slack_sdk.models.blocks import Block, DividerBlock, MarkdownBlock

from firebreak.bot.messages.blocks import (
    SECTION_TEXT_MAX,
    SUMMARY_MAX,
    Message,
    bounded,
    code_safe,
    context,
    escape,
    fallback,
    header,
    link,
    one_line,
    pack,
    section,
    slack_date,
    who,
)
from firebreak.bot.messages.feedback import feedback_blocks
from firebreak.store.schemas import (
    Analysis,
    EvidenceItem,
    ExecutionStatus,
    HistoryRef,
    IncidentOut,
)
from firebreak.tools.evidence import reading_values
from firebreak.tools.promql import metric_reading_text, short_metric
from firebreak.tools.text import duration, truncate

LOG_EVIDENCE_SHOWN = 12
METRIC_EVIDENCE_SHOWN = 8
CLUSTER_EVIDENCE_SHOWN = 8
EVIDENCE_LINE_MAX = 400
REASONING_MAX = 1500
NO_EVIDENCE = (
    ":grey_question: *No evidence:* this analysis rests on no log line, metric or cluster "
    "finding. Add a source under `sources.logs` / `sources.metrics` (or run `firebreak init`), "
    "then *Re-investigate*."
)


def is_offline(analysis: Analysis) -> bool:
    return analysis.execution_status == ExecutionStatus.RECOVERED_FALLBACK


def _evidence_blocks(evidence: Sequence[EvidenceItem]) -> list[Block]:
    logs = [e for e in evidence if e.kind == "log"]
    metrics = [e for e in evidence if e.kind == "metric"]
    blocks: list[Block] = []
    if logs:
        shown = logs[:LOG_EVIDENCE_SHOWN]
        lines = [
            code_safe(truncate(one_line(f"[{e.ref}] {e.text}"), EVIDENCE_LINE_MAX)) for e in shown
        ]
        sources = sorted({e.source for e in shown})
        head = f"*Key log lines* ({escape(', '.join(sources))[:200]})\n```\n"
        tail = "\n```"
        code, omitted = pack(
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
        blocks.append(section(text))
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
        f"{escape(truncate(one_line(text_of(e)), EVIDENCE_LINE_MAX))} "
        f"`{escape(e.ref[:40])}`"
        for e in items[:shown]
    ]
    text, _ = pack(
        [title, *lines],
        SECTION_TEXT_MAX,
        "_…and {n} more " + noun + "_",
        extra=len(items) - len(lines),
    )
    return section(text)


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
            parts.append(f"last error: {escape(truncate(one_line(failed[-1].error), 200))}")
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
    offline = is_offline(analysis)
    failed = analysis.execution_status == ExecutionStatus.FAILED
    prefix = "Offline analysis" if offline else "Root cause"
    text = fallback(
        f"{prefix} for #{incident.id} ({analysis.confidence_score}% confidence): "
        f"{truncate(one_line(analysis.root_cause), SUMMARY_MAX)}"
    )
    blocks: list[Block] = []
    if offline and analysis.set_aside is not None:
        aside = analysis.set_aside
        blocks.append(
            section(
                ":warning: *Offline analysis — the model's answer was set aside.* It said "
                f"“{escape(truncate(one_line(aside.root_cause), 300))}” "
                f"({aside.confidence_score}%), but {escape(aside.why)}. This root cause comes "
                "from Firebreak's rule-based offline analyzer instead."
            )
        )
    elif offline:
        blocks.append(
            section(
                ":warning: *Offline analysis — the LLM was unavailable.* This root cause comes "
                "from Firebreak's rule-based offline analyzer, not from the language model. "
                "Treat it as a starting point and use *Re-investigate* when the LLM is back."
            )
        )
    elif failed:
        blocks.append(
            section(
                ":x: *The analysis failed.* What follows is incomplete; use *Re-investigate* "
                "to try again."
            )
        )
    blocks.append(header(f":mag: Root-cause analysis · #{incident.id} {incident.title}"))
    blocks.append(section(f"*Root cause*\n{escape(analysis.root_cause)}"))
    if analysis.dissent is not None:
        blocks.append(
            section(
                ":scales: *Firebreak's own rules point elsewhere* (the model's answer agrees "
                "with none of their leads, so its confidence is capped):\n"
                f"{escape(truncate(analysis.dissent, 1500))}"
            )
        )
    blocks.append(
        section(
            "",
            fields=[
                f"*Confidence*\n{_confidence(analysis.confidence_score)}",
                f"*Execution*\n{_execution_label(analysis)}",
            ],
        )
    )
    blocks.append(section(f"*Reasoning*\n{escape(truncate(analysis.reasoning, REASONING_MAX))}"))
    blocks.append(section(f":adhesive_bandage: *Mitigation*\n{escape(analysis.mitigation)}"))
    blocks.append(section(f":shield: *Prevention*\n{escape(analysis.prevention)}"))
    blocks.append(section(f":point_right: *Recommendation*\n{escape(analysis.recommendation)}"))
    evidence = _evidence_blocks(analysis.evidence)
    if evidence:
        blocks.append(DividerBlock())
        blocks.extend(evidence)
    elif not failed:
        blocks.append(context(NO_EVIDENCE))
    if analysis.remediation is not None:
        action = escape(truncate(analysis.remediation.action, 100))
        blocks.append(
            context(f":hammer_and_wrench: Proposed remediation `{action}`: see the next message.")
        )
    if analysis.history:
        blocks.append(section(seen_before_text(analysis.history, public_url)))
    blocks.append(context(*_attempts_context(analysis), *_follow_ups(analysis)))
    blocks.extend(feedback_blocks(incident.id, analysis))
    return text, bounded(blocks)


def _follow_ups(analysis: Analysis) -> list[str]:
    """`3 follow-up queries`: the tool calls the reasoning agent made before it answered."""
    count = analysis.tool_calls
    return [f"{count} follow-up quer{'y' if count == 1 else 'ies'}"] if count else []


HISTORY_SHOWN = 3


def _incident_ref(incident_id: int, public_url: str | None) -> str:
    label = f"#{incident_id}"
    if not public_url:
        return label
    return link(f"{public_url.rstrip('/')}/incidents/{incident_id}", label)


def seen_before_line(item: HistoryRef, public_url: str | None, now: datetime) -> str:
    """ "#12, 3 days ago, resolved by @alice in 14 min (rollback)"."""
    ago = duration((now - item.created_at).total_seconds())
    parts = [_incident_ref(item.incident_id, public_url), f"{ago} ago"]
    if item.resolved_at is not None:
        resolved = f"resolved by {who(item.resolved_by)}"
        if item.resolve_s is not None:
            resolved += f" in {duration(item.resolve_s)}"
        if item.resolution:
            resolved += f" ({escape(truncate(one_line(item.resolution), 120))})"
        parts.append(resolved)
    line = ", ".join(parts)
    if item.root_cause:
        line += f" — _{escape(truncate(one_line(item.root_cause), 200))}_"
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


POSTMORTEM_MESSAGE_MAX = MarkdownBlock.text_max_length  # longer drafts go out as a file


def postmortem_message(incident_id: int, markdown: str) -> Message | None:
    """A postmortem draft as one thread message (a Markdown block), or None when it is too
    long for one (it is then shared as a file). The draft quotes alert labels, notes, log
    lines and the model's words, and Slack reads `<!channel>` or `<@U…>` in a Markdown block
    too: it is escaped like every other text Firebreak shows."""
    text = escape(markdown)
    if len(text) > POSTMORTEM_MESSAGE_MAX:
        return None
    said = fallback(f"Postmortem draft for incident #{incident_id}")
    return said, [MarkdownBlock(text=text)]


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
