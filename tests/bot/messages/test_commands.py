"""The slash command's answers: timeline and list bounded, help complete."""

from __future__ import annotations

from datetime import timedelta

from firebreak.bot.messages.commands import help_text, incident_list_blocks, timeline_blocks
from firebreak.store.schemas import (
    TimelineEventOut,
)
from tests.bot.messages.builders import (
    T0,
    all_text,
    blocks_json,
    make_incident,
)


def test_timeline_and_list_are_bounded():
    events = [
        TimelineEventOut(
            at=T0 + timedelta(seconds=i), type="NOTE", actor="U0ALICE", message=f"note {i} " * 20
        )
        for i in range(2000)
    ]
    data = blocks_json(timeline_blocks(events))
    body = all_text(data)
    assert "note 1999" in body and "earlier events not shown" in body
    assert "note 0 " not in body

    incidents = [make_incident(id=i, title=f"incident {i}") for i in range(1000)]
    data = blocks_json(incident_list_blocks(incidents))
    body = all_text(data)
    assert "incident 0" in body and "more incidents" in body
    assert blocks_json(incident_list_blocks([]))
    assert blocks_json(timeline_blocks([]))


def test_help_lists_every_subcommand():
    text = help_text("/firebreak")
    for sub in (
        "help",
        "list",
        "status",
        "ack",
        "escalate",
        "resolve",
        "investigate",
        "timeline",
        "declare",
    ):
        assert f"/firebreak {sub}" in text
