"""The Block Kit helpers every Slack message is built from.

Cards are made of ``slack_sdk.models.blocks`` objects, never hand-written dicts, so slack-sdk
validates the per-element limits when they are serialised. What slack-sdk does not check is
bounded here by design: every list is cut to a fixed number of items, every text goes through
``truncate`` (one helper, one ellipsis), and no message can exceed ``MAX_BLOCKS``.

Text taken from alerts, logs and the LLM is escaped (``&``, ``<``, ``>``) so an alert label can
neither break the markup nor ping ``@channel``. Mentions Firebreak means to make are built by
``mention``; a person who acted is shown by ``who``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from slack_sdk.models.blocks import (
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from firebreak.store.schemas import IncidentStatus
from firebreak.tools.text import truncate

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
SUMMARY_MAX = 300

Message = tuple[str, list[Block]]  # (fallback text, blocks)

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

_SLACK_USER = re.compile(r"[UW][A-Z0-9]+")  # a user id: `U0ALICE`, `W123`
_FORMATTED_MENTION = re.compile(r"<@[UW][A-Z0-9]+>|<!subteam\^S[A-Z0-9]+>|<#[CG][A-Z0-9]+>")


# ---------------------------------------------------------------------- text helpers


def escape(text: str) -> str:
    """Escape the three characters Slack's markup needs escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code_safe(text: str) -> str:
    """Escaped text that cannot close the code block it is shown in."""
    return escape(text).replace("```", "` ` `")


def one_line(text: str) -> str:
    return " ".join(text.split())


def link(url: str, label: str) -> str:
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
    if _SLACK_USER.fullmatch(target):
        return f"<@{target}>"
    if re.fullmatch(r"S[A-Z0-9]+", target):
        return f"<!subteam^{target}>"
    if re.fullmatch(r"[CG][A-Z0-9]+", target):
        return f"<#{target}>"
    return escape(target)


def who(actor: str | None, nobody: str = "—") -> str:
    """The person who acted, as every message shows them: a Slack user id (``U…``) as a
    mention, anything else (a name given to the API, ``alertmanager``) as escaped text, and
    ``nobody`` when there is none."""
    if not actor:
        return nobody
    return f"<@{actor}>" if _SLACK_USER.fullmatch(actor) else escape(actor)


def epoch(at: datetime) -> int:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return int(at.timestamp())


def slack_date(at: datetime, fmt: str = "{date_short_pretty} {time}") -> str:
    """Slack's localised date token, with a UTC fallback for clients that cannot render it."""
    fallback = datetime.fromtimestamp(epoch(at), UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{epoch(at)}^{fmt}|{fallback}>"


def pack(
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


def pack_sections(
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
    return [section("\n".join(chunk)) for chunk in chunks if chunk]


# ---------------------------------------------------------------------- block helpers


def section(text: str, *, fields: Sequence[str] = (), block_id: str | None = None) -> Block:
    return SectionBlock(
        text=MarkdownTextObject(text=truncate(text, SECTION_TEXT_MAX)) if text else None,
        fields=[MarkdownTextObject(text=truncate(f, FIELD_TEXT_MAX)) for f in fields[:FIELDS_MAX]]
        or None,
        block_id=block_id,
    )


def header(text: str) -> Block:
    return HeaderBlock(
        text=PlainTextObject(text=truncate(one_line(text), HEADER_TEXT_MAX), emoji=True)
    )


def context(*parts: str) -> Block:
    items = [p for p in parts if p][:CONTEXT_ELEMENTS_MAX]
    return ContextBlock(
        elements=[MarkdownTextObject(text=truncate(p, SECTION_TEXT_MAX)) for p in items]
    )


def button(
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


def confirm_dialog(title: str, text: str, yes: str) -> ConfirmObject:
    return ConfirmObject(
        title=PlainTextObject(text=truncate(title, 100)),
        text=MarkdownTextObject(text=truncate(text, CONFIRM_TEXT_MAX)),
        confirm=PlainTextObject(text=truncate(yes, 30)),
        deny=PlainTextObject(text="Cancel"),
    )


def bounded(blocks: list[Block]) -> list[Block]:
    """Never more than MAX_BLOCKS; the builders stay far below it, this is the last guard."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    return [*blocks[: MAX_BLOCKS - 1], context(f"{len(blocks) - MAX_BLOCKS + 1} blocks omitted")]


def fallback(text: str) -> str:
    """The top-level ``text``: notifications parse it as mrkdwn, so it is escaped too."""
    return truncate(escape(one_line(text)), FALLBACK_TEXT_MAX)


def blocks_json(blocks: list[Any] | None) -> list[dict[str, Any]] | None:
    """Block Kit objects (validated by slack-sdk here) or dicts, as JSON-ready dicts."""
    if not blocks:
        return None
    return [b.to_dict() if isinstance(b, Block) else dict(b) for b in blocks]


# ---------------------------------------------------------------------- labels


def status_label(status: IncidentStatus | str) -> str:
    status = IncidentStatus(status)
    return f"{STATUS_EMOJI[status]} {status.value.capitalize()}"


def severity_label(severity: str) -> str:
    emoji = SEVERITY_EMOJI.get(severity.lower(), ":white_circle:")
    return f"{emoji} {escape(severity or 'unknown')}"
