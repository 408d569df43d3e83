"""The incident card: its facts, its buttons, and its bounds."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from slack_sdk.models.blocks import Block

from firebreak.bot.console import render_text
from firebreak.bot.messages.incident import (
    ACTION_ACK,
    ACTION_ESCALATE,
    ACTION_INVESTIGATE,
    ACTION_OPEN_PAGE,
    INCIDENT_ACTIONS_BLOCK,
    incident_card,
)
from firebreak.store.schemas import (
    IncidentStatus,
)
from tests.bot.messages.builders import (
    INCIDENT_BUTTONS,
    T0,
    all_text,
    blocks_json,
    buttons,
    make_alert,
    make_analysis,
    make_incident,
)
from tests.fakes.slack_api import block_errors

# ---------------------------------------------------------------------- incident card


def test_incident_card_shows_the_incident_and_its_buttons():
    text, blocks = incident_card(
        make_incident(analysis=make_analysis()), alertmanager_url="http://am:9093/"
    )
    data = blocks_json(blocks)
    assert "HighErrorRate on checkout" in text and "#7" in text
    assert data[0]["type"] == "header" and "HighErrorRate on checkout" in data[0]["text"]["text"]
    body = all_text(data)
    for expected in ("Triggered", "critical", "checkout", "*Alerts*\\n2", "Escalation level"):
        assert expected in body
    assert "Connection pool exhausted" in body  # one-line root cause
    assert "Roll back checkout" not in body  # the full RCA goes to the thread
    assert "http://prometheus:9090/graph" in body
    assert "http://am:9093/#/alerts?filter=" in body
    found = buttons(data)
    assert set(found) == INCIDENT_BUTTONS
    assert {b["value"] for b in found.values()} == {"7"}


def test_acknowledged_card_names_who_and_drops_the_ack_button():
    incident = make_incident(
        status=IncidentStatus.ACKNOWLEDGED, acknowledged_by="U0BOB", acknowledged_at=T0
    )
    data = blocks_json(incident_card(incident)[1])
    assert "<@U0BOB>" in all_text(data)
    assert set(buttons(data)) == INCIDENT_BUTTONS - {ACTION_ACK}


def test_resolved_card_has_no_ack_or_escalate_button():
    incident = make_incident(status=IncidentStatus.RESOLVED, resolved_at=T0 + timedelta(hours=1))
    data = blocks_json(incident_card(incident)[1])
    found = buttons(data)
    assert ACTION_ACK not in found and ACTION_ESCALATE not in found
    assert ACTION_INVESTIGATE in found
    assert "Resolved" in all_text(data)


def test_three_hundred_alerts_are_bounded():
    alerts = [make_alert(i) for i in range(300)]
    incident = make_incident(alerts=alerts, alert_count=300, truncated_alerts=12)
    data = blocks_json(incident_card(incident)[1])
    body = all_text(data)
    assert "web-4:8080" in body and "web-5:8080" not in body
    assert "and 295 more alerts" in body
    assert "+12 truncated" in body


def test_text_from_alerts_cannot_ping_or_break_markup():
    incident = make_incident(title="<!channel> db & <cache> down", service="<@U0EVIL>")
    text, blocks = incident_card(incident)
    data = blocks_json(blocks)
    mrkdwn = [text] + [
        str(obj["text"]) for obj in _text_objects(data) if obj.get("type") == "mrkdwn"
    ]
    assert all("<!channel>" not in t and "<@U0EVIL>" not in t for t in mrkdwn)
    assert any("&lt;cache&gt;" in t for t in mrkdwn) and "&amp;" in text
    # plain_text (the header) is never parsed for mentions, so it shows the title verbatim
    assert data[0]["text"] == {
        "type": "plain_text",
        "text": ":rotating_light: #7 <!channel> db & <cache> down",
        "emoji": True,
    }


def _text_objects(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = [node] if node.get("type") in ("mrkdwn", "plain_text") else []
        return found + [o for v in node.values() for o in _text_objects(v)]
    if isinstance(node, list):
        return [o for v in node for o in _text_objects(v)]
    return []


def test_header_title_is_bounded():
    data = blocks_json(incident_card(make_incident(title="x" * 1000))[1])
    assert data[0]["text"]["text"].endswith("…")


# ---------------------------------------------------------------------- card details


def started_field(blocks: list[Block]) -> str:
    return next(line for line in render_text(blocks).splitlines() if "Started:" in line)


def test_started_is_the_earliest_alert_and_the_card_says_how_long_it_fires():
    first = make_alert(1).model_copy(update={"starts_at": T0})
    later = make_alert(2).model_copy(update={"starts_at": T0 + timedelta(minutes=5)})
    received = T0 - timedelta(hours=1, minutes=54)  # a 10:00 alert Firebreak got at 08:06
    incident = make_incident(created_at=received, alerts=[first, later])
    now = T0 + timedelta(minutes=14, seconds=30)
    line = started_field(incident_card(incident, now=now)[1])
    assert line == "  Started: 2026-11-22 10:00 UTC (firing for 14 min)"
    date = json.dumps([b.to_dict() for b in incident_card(incident, now=now)[1]])
    assert f"<!date^{int(T0.timestamp())}^" in date  # Slack's token localises the start

    later_now = T0 + timedelta(hours=3, minutes=5)
    assert "(firing for 3 h 5 min)" in started_field(incident_card(incident, now=later_now)[1])
    resolved = make_incident(
        alerts=[first], status=IncidentStatus.RESOLVED, resolved_at=T0 + timedelta(minutes=40)
    )
    assert "(fired for 40 min)" in started_field(incident_card(resolved, now=later_now)[1])
    declared = make_incident(alerts=[], alert_count=0, created_at=T0)  # no alert: when opened
    assert "10:00 UTC (firing for under a minute)" in started_field(
        incident_card(declared, now=T0 + timedelta(seconds=20))[1]
    )


def test_card_has_an_open_in_firebreak_url_button():
    url = "https://firebreak.example.com/incidents/7?token=7.1799999999.abc"
    _, blocks = incident_card(make_incident(), page_url=url)
    (actions,) = [b.to_dict() for b in blocks if b.block_id == INCIDENT_ACTIONS_BLOCK]
    link = actions["elements"][-1]
    assert link["action_id"] == ACTION_OPEN_PAGE and link["url"] == url
    assert "Open in Firebreak" in link["text"]["text"]
    assert block_errors([b.to_dict() for b in blocks], limit=50) == []
    _, without = incident_card(make_incident())
    assert ACTION_OPEN_PAGE not in json.dumps([b.to_dict() for b in without])


def test_footer_names_the_group_not_its_raw_key():
    key = '{}/{severity=~"critical|page"}:{alertname="HighErrorRate", service="checkout"}'
    incident = make_incident(group_key=key)
    footer = blocks_json(incident_card(incident)[1])[-1]["elements"][0]["text"]
    assert footer == "Incident #7 · HighErrorRate · service=checkout"
    assert "severity=~" not in footer and "{" not in footer


def test_escalation_says_level_of_levels_and_policy_and_what_0_means():
    from firebreak.bot.messages.incident import OnCallView
    from firebreak.store.escalations import LastPage

    def field(incident, view=None) -> str:
        return all_text(blocks_json(incident_card(incident, oncall=view)[1])[1:2])

    assert "0 — not paged yet" in field(make_incident())
    page = LastPage(
        level=1, targets=["U0ALICE"], reasons={}, unstaffed=[], policy="payments", levels=2
    )
    paged = field(make_incident(escalation_level=1), OnCallView(page=page))
    assert "1 of 2 (payments)" in paged
