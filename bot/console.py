"""Slack messages for the terminal (console mode, `firebreak demo`): any list of blocks as
plain text, or as rich console markup, from one reading of Slack's mrkdwn."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from rich.markup import escape as rich_escape
from slack_sdk.models.blocks import Block

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
    """``label (url)``, the whole URL however long: in a terminal the URL is all there is to
    open or copy (a signed page link is useless without its token). Clickable with markup."""
    shown = rich_escape(url) if markup else url
    text = f"{label} ({shown})" if label else shown
    return f"[link={_markup_url(url)}]{text}[/link]" if markup else text


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
