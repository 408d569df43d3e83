"""The card lines of incident memory: "Seen before" on the RCA reply, "Related" on the card,
the postmortem message; built by slack-sdk, so Block Kit limits are checked."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from firebreak.bot.console import render_text
from firebreak.bot.messages.incident import incident_card, related_line
from firebreak.bot.messages.rca import (
    POSTMORTEM_MESSAGE_MAX,
    postmortem_message,
    rca_card,
    seen_before_text,
)
from firebreak.store.schemas import Analysis, HistoryRef
from tests.bot.messages.builders import make_incident as incident
from tests.support.analyses import make_analysis

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def earlier(incident_id: int = 12, **overrides: object) -> HistoryRef:
    created = NOW - timedelta(days=3)
    values: dict[str, object] = {
        "ref": "H1",
        "incident_id": incident_id,
        "title": "HighErrorRate: checkout",
        "created_at": created,
        "resolved_at": created + timedelta(minutes=14),
        "resolved_by": "U0ALICE",
        "root_cause": "The deploy exhausted the <db> pool",
        "resolution": "rollback",
    }
    return HistoryRef.model_validate(values | overrides)


def analysis(history: list[HistoryRef]) -> Analysis:
    return make_analysis(root_cause="Pool exhausted again.", history=history)


def test_seen_before_names_when_who_how_long_and_what_fixed_it() -> None:
    text = seen_before_text([earlier()], "https://firebreak.example.com/", NOW)
    assert text == (
        ":repeat: *Seen before:* <https://firebreak.example.com/incidents/12|#12>, 3 days ago, "
        "resolved by <@U0ALICE> in 14 min (rollback) — _The deploy exhausted the &lt;db&gt; "
        "pool_"
    )
    unresolved = earlier(13, resolved_at=None, resolution=None, root_cause=None)
    several = seen_before_text([earlier(), unresolved], None, NOW)
    assert several.splitlines()[0] == ":repeat: *Seen before:*"
    assert several.splitlines()[2] == "• #13, 3 days ago"


def test_the_rca_reply_carries_the_history_with_links() -> None:
    _, blocks = rca_card(
        incident(), analysis([earlier()]), public_url="https://firebreak.example.com"
    )
    rendered = json.dumps([b.to_dict() for b in blocks])
    assert "Seen before" in rendered and "https://firebreak.example.com/incidents/12" in rendered
    _, plain = rca_card(incident(), analysis([]))
    assert "Seen before" not in json.dumps([b.to_dict() for b in plain])


def test_the_card_names_related_incidents() -> None:
    _, blocks = incident_card(incident(related=[41, 42]))
    assert "Related: #41, #42" in render_text(blocks)
    _, none = incident_card(incident())
    assert "Related" not in render_text(none)
    many = related_line(list(range(1, 15)))
    assert many.endswith("#10 and 4 more")


def test_postmortem_message_fits_one_markdown_block_or_none() -> None:
    message = postmortem_message(7, "# Postmortem\n\n## Summary\nok")
    assert message is not None
    text, blocks = message
    assert text == "Postmortem draft for incident #7"
    assert blocks[0].to_dict() == {"type": "markdown", "text": "# Postmortem\n\n## Summary\nok"}
    assert "## Summary" in render_text(blocks)
    assert postmortem_message(7, "x" * (POSTMORTEM_MESSAGE_MAX + 1)) is None
