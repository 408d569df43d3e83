"""Block Kit cards stay inside Slack's limits by design, and the fake Slack API behaves."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.models.blocks import Block, DividerBlock
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from firebreak.bot import cards
from firebreak.store.schemas import (
    AlertOut,
    Analysis,
    Attempt,
    EvidenceItem,
    ExecutionStatus,
    IncidentOut,
    IncidentStatus,
    RemediationParameter,
    RemediationProposal,
    SlackRef,
    TimelineEventOut,
)
from tests.fakes.slack_api import FakeSlackApi, block_errors

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
INCIDENT_BUTTONS = {
    cards.ACTION_ACK,
    cards.ACTION_ESCALATE,
    cards.ACTION_RESOLVE,
    cards.ACTION_INVESTIGATE,
}


# ---------------------------------------------------------------------- builders


def make_alert(i: int, **labels: str) -> AlertOut:
    return AlertOut(
        fingerprint=f"fp{i:04d}",
        status="firing",
        labels={"alertname": "HighErrorRate", "service": "checkout", "instance": f"web-{i}:8080"}
        | labels,
        annotations={"summary": f"5xx ratio above 5% on web-{i}"},
        starts_at=T0,
        ends_at=None,
        generator_url=f"http://prometheus:9090/graph?g0.expr=errors{{i=%22{i}%22}}&g0.tab=1",
    )


def make_incident(**changes: Any) -> IncidentOut:
    base: dict[str, Any] = {
        "id": 7,
        "title": "HighErrorRate on checkout",
        "status": IncidentStatus.TRIGGERED,
        "severity": "critical",
        "service": "checkout",
        "labels": {"alertname": "HighErrorRate", "service": "checkout"},
        "group_key": '{}:{alertname="HighErrorRate"}',
        "created_at": T0,
        "acknowledged_at": None,
        "acknowledged_by": None,
        "resolved_at": None,
        "alert_count": 2,
        "truncated_alerts": 0,
        "escalation_level": 0,
        "slack": SlackRef(),
        "alerts": [make_alert(1), make_alert(2)],
    }
    return IncidentOut(**(base | changes))


def make_analysis(**changes: Any) -> Analysis:
    base: dict[str, Any] = {
        "root_cause": "Connection pool exhausted after deploy v2.3.1",
        "reasoning": "Errors start 40 s after the deploy; pool usage pinned at 50/50.",
        "mitigation": "Roll back checkout to v2.3.0.",
        "prevention": "Alert on pool saturation; load-test pool settings.",
        "recommendation": "Roll back now, then raise the pool size.",
        "confidence_score": 82,
        "execution_status": ExecutionStatus.COMPLETED,
        "attempts": [Attempt(number=1, provider="ollama", ok=True, elapsed_ms=2300)],
        "evidence": [
            EvidenceItem(ref="L3", kind="log", source="loki", text="ERROR pool exhausted"),
            EvidenceItem(ref="M1", kind="metric", source="prom", text="db_pool_in_use 50"),
        ],
        "provider": "ollama",
        "model": "llama3.1:8b",
    }
    return Analysis(**(base | changes))


def blocks_json(blocks: list[Block]) -> list[dict[str, Any]]:
    """Serialise (slack-sdk validates its limits here) and check what it does not."""
    assert 0 < len(blocks) <= cards.MAX_BLOCKS
    data = [b.to_dict() for b in blocks]
    assert block_errors(data, limit=cards.MAX_BLOCKS) == []
    for block in data:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
    return data


def buttons(data: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["action_id"]: e for b in data if b["type"] == "actions" for e in b["elements"]}


def all_text(data: list[dict[str, Any]]) -> str:
    return json.dumps(data, ensure_ascii=False)


# ---------------------------------------------------------------------- incident card


def test_incident_card_shows_the_incident_and_its_buttons():
    text, blocks = cards.incident_card(
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
    data = blocks_json(cards.incident_card(incident)[1])
    assert "<@U0BOB>" in all_text(data)
    assert set(buttons(data)) == INCIDENT_BUTTONS - {cards.ACTION_ACK}


def test_resolved_card_has_no_ack_or_escalate_button():
    incident = make_incident(status=IncidentStatus.RESOLVED, resolved_at=T0 + timedelta(hours=1))
    data = blocks_json(cards.incident_card(incident)[1])
    found = buttons(data)
    assert cards.ACTION_ACK not in found and cards.ACTION_ESCALATE not in found
    assert cards.ACTION_INVESTIGATE in found
    assert "Resolved" in all_text(data)


def test_three_hundred_alerts_are_bounded():
    alerts = [make_alert(i) for i in range(300)]
    incident = make_incident(alerts=alerts, alert_count=300, truncated_alerts=12)
    data = blocks_json(cards.incident_card(incident)[1])
    body = all_text(data)
    assert "web-4:8080" in body and "web-5:8080" not in body
    assert "and 295 more alerts" in body
    assert "+12 truncated" in body


def test_text_from_alerts_cannot_ping_or_break_markup():
    incident = make_incident(title="<!channel> db & <cache> down", service="<@U0EVIL>")
    text, blocks = cards.incident_card(incident)
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
    data = blocks_json(cards.incident_card(make_incident(title="x" * 1000))[1])
    assert data[0]["text"]["text"].endswith("…")


# ---------------------------------------------------------------------- RCA card


def test_rca_card_sections():
    text, blocks = cards.rca_card(make_incident(), make_analysis())
    data = blocks_json(blocks)
    body = all_text(data)
    assert "Connection pool exhausted" in text
    for expected in (
        "Root cause",
        "82%",
        "Reasoning",
        "Roll back checkout",
        "Prevention",
        "Recommendation",
        "ERROR pool exhausted",
        "db_pool_in_use 50",
        "llama3.1:8b",
        "1 attempt",
    ):
        assert expected in body, expected
    assert "offline" not in data[0].get("text", {}).get("text", "").lower()
    assert not buttons(data)  # no remediation proposed, no buttons


def test_rca_card_counts_the_follow_up_queries():
    def context(analysis: Analysis) -> str:
        return all_text(blocks_json(cards.rca_card(make_incident(), analysis)[1])[-1:])

    assert "follow-up" not in context(make_analysis())
    assert "3 follow-up queries" in context(make_analysis(tool_calls=3))
    assert "1 follow-up query" in context(make_analysis(tool_calls=1))


def test_fallback_card_says_offline_at_the_top():
    analysis = make_analysis(
        execution_status=ExecutionStatus.RECOVERED_FALLBACK,
        provider="offline",
        attempts=[Attempt(number=1, provider="ollama", ok=False, error="connection refused")],
    )
    text, blocks = cards.rca_card(make_incident(), analysis)
    data = blocks_json(blocks)
    top = data[0]["text"]["text"]
    assert "Offline analysis" in top and "LLM was unavailable" in top
    assert text.startswith("Offline analysis")
    assert "connection refused" in all_text(data)


def test_cluster_findings_have_their_own_section():
    findings = [
        EvidenceItem(
            ref=f"K{i}",
            kind="kubernetes",
            source="prod",
            text=f"2026-12-01T10:14:00+00:00 Pod/checkout-{i} (x3): Back-off restarting <c>",
        )
        for i in range(1, 11)
    ]
    log = EvidenceItem(ref="L1", kind="log", source="loki", text="ERROR pool exhausted")
    analysis = make_analysis(evidence=[log, *findings])
    data = blocks_json(cards.rca_card(make_incident(), analysis)[1])
    sections = [b["text"]["text"] for b in data if b["type"] == "section" and "text" in b]
    cluster = next(s for s in sections if s.startswith("*Cluster findings*"))
    assert cluster.count("\n• ") == cards.CLUSTER_EVIDENCE_SHOWN
    assert "• *prod* 2026-12-01T10:14:00+00:00 Pod/checkout-1 (x3): Back-off restarting " in cluster
    assert "&lt;c&gt;" in cluster and "`K1`" in cluster
    assert f"…and {10 - cards.CLUSTER_EVIDENCE_SHOWN} more findings" in cluster
    logs = next(s for s in sections if s.startswith("*Key log lines*"))
    assert "Pod/checkout" not in logs  # findings are not log lines


def test_huge_analysis_stays_within_limits():
    evidence = [
        EvidenceItem(ref=f"L{i}", kind="log", source="loki", text=f"ERROR {i} " + "x" * 600)
        for i in range(250)
    ] + [
        EvidenceItem(ref=f"M{i}", kind="metric", source="prom", text=f"metric_{i} " + "9" * 500)
        for i in range(250)
    ]
    proposal = RemediationProposal(
        action="restart_deployment",
        parameters=[RemediationParameter(name=f"p{i}", value="v" * 300) for i in range(40)],
        reason="r" * 5000,
    )
    analysis = make_analysis().model_copy(
        update={
            "root_cause": "R" * 10_000,
            "reasoning": "because " * 3000,
            "mitigation": "m" * 4000,
            "prevention": "p & q " * 1000,
            "recommendation": "<" * 4000,
            "evidence": evidence,
            "remediation": proposal,
            "attempts": [Attempt(number=i, provider="openai", ok=False) for i in range(50)],
        }
    )
    _, blocks = cards.rca_card(make_incident(), analysis)
    data = blocks_json(blocks)
    sections = [b["text"]["text"] for b in data if b["type"] == "section" and "text" in b]
    root = next(s for s in sections if s.startswith("*Root cause*"))
    assert len(root) == 3000 and root.endswith("…")
    logs = next(s for s in sections if s.startswith("*Key log lines*"))
    assert logs.count("```") == 2  # the code block is closed, not cut in half
    assert "more log lines" in logs
    metrics = next(s for s in sections if s.startswith("*Key metrics*"))
    shown = metrics.count("\n• ")
    assert 1 <= shown <= cards.METRIC_EVIDENCE_SHOWN
    assert f"…and {250 - shown} more metric readings" in metrics
    assert not buttons(data)  # the proposal has its own message: one approval message
    _, approval = cards.remediation_card(7, proposal, approval="inv-7-abc")
    assert set(buttons(blocks_json(approval))) == {
        cards.ACTION_REMEDIATION_APPROVE,
        cards.ACTION_REMEDIATION_REJECT,
    }


def test_remediation_buttons_carry_the_run_and_the_proposal_shown():
    analysis = make_analysis(
        remediation=RemediationProposal(
            action="rollback_deploy",
            parameters=[RemediationParameter(name="deployment", value="checkout")],
            reason="The deploy correlates with the first errors.",
        )
    )
    proposal = analysis.remediation
    assert proposal is not None
    assert not buttons(blocks_json(cards.rca_card(make_incident(), analysis)[1]))
    data = blocks_json(cards.remediation_card(7, proposal, approval="inv-7-abc")[1])
    found = buttons(data)
    assert set(found) == {cards.ACTION_REMEDIATION_APPROVE, cards.ACTION_REMEDIATION_REJECT}
    for button in found.values():
        target = cards.parse_remediation_value(button["value"])
        assert target == cards.ApprovalTarget(7, "inv-7-abc", proposal.digest())
    assert "deployment" in all_text(data)

    _, decided = cards.remediation_card(
        7, proposal, approval="inv-7-abc", decision="Approved by <@U0BOB>"
    )
    decided_data = blocks_json(decided)
    assert not buttons(decided_data)
    assert "Approved by <@U0BOB>" in all_text(decided_data)
    assert cards.parse_remediation_value("7:restart") == cards.ApprovalTarget(7, None, None)


def test_a_proposal_digest_names_its_action_and_parameters_only():
    def proposal(value: str, reason: str = "r") -> RemediationProposal:
        return RemediationProposal(
            action="restart",
            parameters=[RemediationParameter(name="service", value=value)],
            reason=reason,
        )

    assert proposal("checkout").digest() == proposal("checkout", "other words").digest()
    assert proposal("checkout").digest() != proposal("payments").digest()


# ---------------------------------------------------------------------- other messages


def test_escalation_mentions():
    text = cards.escalation_page_text(2, ["U0ALICE", "S0SRE", "C0OPS", "W0BOB", "<@U0X>"])
    assert "level 2" in text
    for expected in ("<@U0ALICE>", "<!subteam^S0SRE>", "<#C0OPS>", "<@W0BOB>", "<@U0X>"):
        assert expected in text
    assert "<!channel>" not in cards.escalation_page_text(1, ["<!channel"])


def test_timeline_and_list_are_bounded():
    events = [
        TimelineEventOut(
            at=T0 + timedelta(seconds=i), type="NOTE", actor="U0ALICE", message=f"note {i} " * 20
        )
        for i in range(2000)
    ]
    data = blocks_json(cards.timeline_blocks(events))
    body = all_text(data)
    assert "note 1999" in body and "earlier events not shown" in body
    assert "note 0 " not in body

    incidents = [make_incident(id=i, title=f"incident {i}") for i in range(1000)]
    data = blocks_json(cards.incident_list_blocks(incidents))
    body = all_text(data)
    assert "incident 0" in body and "more incidents" in body
    assert blocks_json(cards.incident_list_blocks([]))
    assert blocks_json(cards.timeline_blocks([]))


def test_help_lists_every_subcommand():
    text = cards.help_text("/firebreak")
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


def test_truncate():
    assert cards.truncate("short", 10) == "short"
    cut = cards.truncate("a" * 100, 10)
    assert len(cut) == 10 and cut.endswith("…")
    cut = cards.truncate(cards.escape("&" * 100), 12)
    assert len(cut) <= 12 and cut.replace("&amp;", "") == "…"


def test_render_text_for_the_terminal():
    incident = make_incident(
        status=IncidentStatus.ACKNOWLEDGED, acknowledged_by="U0BOB", title="db <slow>"
    )
    out = cards.render_text(cards.incident_card(incident)[1])
    assert "db <slow>" in out
    assert "@U0BOB" in out and "<@" not in out
    assert "[ " in out and "Escalate" in out
    assert "2026-11-22 10:00 UTC" in out
    assert "<!date" not in out
    page = cards.render_text([b for b in cards.rca_card(incident, make_analysis())[1]])
    assert "ERROR pool exhausted" in page


# ---------------------------------------------------------------------- through the fake Slack


async def test_card_posted_and_updated_through_real_slack_sdk():
    with FakeSlackApi(channels={"C0INCIDENTS"}) as slack:
        client = AsyncWebClient(token=slack.token, base_url=slack.base_url)
        text, blocks = cards.incident_card(make_incident())
        posted = await client.chat_postMessage(channel="C0INCIDENTS", text=text, blocks=blocks)
        ts = posted["ts"]

        acked = make_incident(status=IncidentStatus.ACKNOWLEDGED, acknowledged_by="U0BOB")
        text, blocks = cards.incident_card(acked)
        await client.chat_update(channel="C0INCIDENTS", ts=ts, text=text, blocks=blocks)

        assert len(slack.calls("chat.postMessage")) == 1
        assert len(slack.calls("chat.update")) == 1
        assert slack.methods_called() == ["chat.postMessage", "chat.update"]
        stored = slack.message("C0INCIDENTS", ts)
        assert cards.ACTION_ACK not in buttons(stored["blocks"])
        assert "<@U0BOB>" in json.dumps(stored["blocks"])
        assert slack.last_call("chat.update").headers["Authorization"] == f"Bearer {slack.token}"

        rca_text, rca_blocks = cards.rca_card(acked, make_analysis())
        reply = await client.chat_postMessage(
            channel="C0INCIDENTS", thread_ts=ts, text=rca_text, blocks=rca_blocks
        )
        assert [m["ts"] for m in slack.thread("C0INCIDENTS", ts)] == [reply["ts"]]


async def test_fake_ts_are_unique_and_increasing():
    with FakeSlackApi() as slack:
        client = slack.client()
        stamps = [
            (await client.chat_postMessage(channel="C1", text=str(i)))["ts"] for i in range(5)
        ]
        assert stamps[0] == "1732290000.000100"
        assert len(set(stamps)) == 5
        assert stamps == sorted(stamps, key=lambda s: tuple(map(int, s.split("."))))


async def test_rate_limit_is_retried_after_retry_after():
    with FakeSlackApi() as slack:
        slack.rate_limit("chat.postMessage", times=1, retry_after=0)
        client = AsyncWebClient(
            token=slack.token,
            base_url=slack.base_url,
            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
        )
        response = await client.chat_postMessage(channel="C1", text="hello")
        assert response["ok"]
        first, second = slack.calls("chat.postMessage")
        assert first.status == 429 and first.error == "ratelimited"
        assert second.ok and second.params["text"] == "hello"
        assert len(slack.messages("C1")) == 1


async def test_rate_limit_without_retry_handler_surfaces_retry_after():
    with FakeSlackApi() as slack:
        slack.rate_limit("chat.update", times=2, retry_after=30)
        client = slack.client()
        with pytest.raises(SlackApiError) as caught:
            await client.chat_update(channel="C1", ts="1.1", text="x")
        assert caught.value.response.status_code == 429
        assert caught.value.response.headers["retry-after"] in ("30", ["30"])


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing:UserWarning")
async def test_fake_validates_like_slack():
    with FakeSlackApi(channels={"C1"}) as slack:
        client = slack.client()

        async def error_of(call) -> str:
            with pytest.raises(SlackApiError) as caught:
                await call
            return caught.value.response["error"]

        assert await error_of(client.chat_update(channel="C1", ts="9.9", text="x")) == (
            "message_not_found"
        )
        many = [DividerBlock() for _ in range(51)]
        assert await error_of(client.chat_postMessage(channel="C1", text="x", blocks=many)) == (
            "invalid_blocks"
        )
        assert await error_of(client.chat_postMessage(channel="C1")) == "no_text"
        assert await error_of(client.chat_postMessage(channel="C9", text="x")) == (
            "channel_not_found"
        )
        bad = AsyncWebClient(token="xoxb-wrong", base_url=slack.base_url)
        assert await error_of(bad.auth_test()) == "invalid_auth"
        nobody = AsyncWebClient(token=None, base_url=slack.base_url)
        assert await error_of(nobody.auth_test()) == "not_authed"

        slack.api_error("chat.postMessage", "is_archived")
        assert await error_of(client.chat_postMessage(channel="C1", text="x")) == "is_archived"
        slack.http_error("*", status=500)
        with pytest.raises(SlackApiError) as caught:
            await client.auth_test()
        assert caught.value.response.status_code == 500
        slack.outage = True
        with pytest.raises(SlackApiError) as caught:
            await client.chat_postMessage(channel="C1", text="x")
        assert caught.value.response.status_code == 503
        slack.outage = False
        assert (await client.chat_postMessage(channel="C1", text="back"))["ok"]


async def test_fake_form_encoded_and_other_methods():
    with FakeSlackApi() as slack:
        client = slack.client()
        posted = await client.api_call(
            "chat.postMessage",
            data={"channel": "C1", "text": "form", "blocks": json.dumps([{"type": "divider"}])},
        )
        assert slack.last_call("chat.postMessage").params["blocks"] == [{"type": "divider"}]
        assert slack.last_call("chat.postMessage").content_type == (
            "application/x-www-form-urlencoded"
        )
        link = await client.chat_getPermalink(channel="C1", message_ts=posted["ts"])
        assert link["permalink"].endswith("/archives/C1/p1732290000000100")
        dm = await client.conversations_open(users="U0ALICE")
        assert dm["channel"]["id"].startswith("D")
        assert (await client.conversations_open(users="U0ALICE"))["channel"] == dm["channel"]
        slack.add_user("U0ALICE", "alice", real_name="Alice Liddell")
        assert (await client.users_info(user="U0ALICE"))["user"]["real_name"] == "Alice Liddell"
        eph = await client.chat_postEphemeral(channel="C1", user="U0ALICE", text="only you")
        assert eph["message_ts"]
        auth = await client.auth_test()
        assert auth["user_id"] == slack.bot_user_id

        url = slack.response_url("abc")
        response = await AsyncWebhookClient(url).send(text="done", replace_original=False)
        assert response.status_code == 200
        (recorded,) = slack.responses("abc")
        assert recorded.params == {"text": "done", "replace_original": False}


# ---------------------------------------------------------------------- card details


def started_field(blocks: list[Block]) -> str:
    return next(line for line in cards.render_text(blocks).splitlines() if "Started:" in line)


def test_started_is_the_earliest_alert_and_the_card_says_how_long_it_fires():
    first = make_alert(1).model_copy(update={"starts_at": T0})
    later = make_alert(2).model_copy(update={"starts_at": T0 + timedelta(minutes=5)})
    received = T0 - timedelta(hours=1, minutes=54)  # a 10:00 alert Firebreak got at 08:06
    incident = make_incident(created_at=received, alerts=[first, later])
    now = T0 + timedelta(minutes=14, seconds=30)
    line = started_field(cards.incident_card(incident, now=now)[1])
    assert line == "  Started: 2026-11-22 10:00 UTC (firing for 14 min)"
    date = json.dumps([b.to_dict() for b in cards.incident_card(incident, now=now)[1]])
    assert f"<!date^{int(T0.timestamp())}^" in date  # Slack's token localises the start

    later_now = T0 + timedelta(hours=3, minutes=5)
    assert "(firing for 3 h 5 min)" in started_field(
        cards.incident_card(incident, now=later_now)[1]
    )
    resolved = make_incident(
        alerts=[first], status=IncidentStatus.RESOLVED, resolved_at=T0 + timedelta(minutes=40)
    )
    assert "(fired for 40 min)" in started_field(cards.incident_card(resolved, now=later_now)[1])
    declared = make_incident(alerts=[], alert_count=0, created_at=T0)  # no alert: when opened
    assert "10:00 UTC (firing for under a minute)" in started_field(
        cards.incident_card(declared, now=T0 + timedelta(seconds=20))[1]
    )


def test_card_has_an_open_in_firebreak_url_button():
    url = "https://firebreak.example.com/incidents/7?token=7.1799999999.abc"
    _, blocks = cards.incident_card(make_incident(), page_url=url)
    (actions,) = [b.to_dict() for b in blocks if b.block_id == cards.INCIDENT_ACTIONS_BLOCK]
    link = actions["elements"][-1]
    assert link["action_id"] == cards.ACTION_OPEN_PAGE and link["url"] == url
    assert "Open in Firebreak" in link["text"]["text"]
    assert block_errors([b.to_dict() for b in blocks], limit=50) == []
    _, without = cards.incident_card(make_incident())
    assert cards.ACTION_OPEN_PAGE not in json.dumps([b.to_dict() for b in without])


def test_rca_metric_lines_name_the_metric_once_and_short():
    stored = (
        'sum(rate(http_requests_total{service="checkout",code=~"5.."}[5m])) / '
        'sum(rate(http_requests_total{service="checkout"}[5m])){service=checkout} '
        "baseline=0.002 current=0.25 peak=0.25"
    )
    pool = (
        'connection_pool_in_use{service="checkout"}{pool=payment-gateway,service=checkout} '
        "baseline=5.1 current=10 peak=10"
    )
    analysis = make_analysis(
        evidence=[
            EvidenceItem(ref="M1", kind="metric", source="prom", text=stored),
            EvidenceItem(ref="M2", kind="metric", source="prom", text=pool),
        ]
    )
    page = cards.render_text(cards.rca_card(make_incident(), analysis)[1])
    assert 'http_requests_total{code=~"5.."} baseline=0.002' in page
    assert 'connection_pool_in_use{pool="payment-gateway",service="checkout"} baseline' in page
    assert "}{" not in page and "sum(rate(" not in page


def test_render_text_as_rich_markup():
    text = (
        "*Root cause* in `pool_in_use[5m]` per <https://grafana.example.com/d/1|the board>, "
        "<!date^1795000000^{date}|2026-11-18 10:00 UTC> by <@U0BOB> for <!subteam^S0SRE> "
        "_soon_ ~old~ [not markup] a_b_c &lt;x&gt;"
    )
    markup = cards.mrkdwn_to_text(text, markup=True)
    assert markup.startswith("[bold]Root cause[/bold] in [cyan]pool_in_use")
    assert (
        "[link=https://grafana.example.com/d/1]the board (https://grafana.example.com/d/1)[/link]"
    ) in markup
    assert "2026-11-18 10:00 UTC" in markup and "<!date" not in markup
    assert "[bold magenta]@U0BOB[/bold magenta]" in markup
    assert "[bold magenta]@S0SRE[/bold magenta]" in markup
    assert "[italic]soon[/italic] [strike]old[/strike] \\[not markup] a_b_c <x>" in markup

    out = io.StringIO()
    console = Console(file=out, width=300, color_system="standard", force_terminal=True)
    console.print(markup, highlight=False)
    shown = out.getvalue()
    assert "\x1b[1mRoot cause" in shown  # bold, not asterisks
    assert "*" not in shown and "`" not in shown and "[not markup]" in shown
    assert "pool_in_use[5m]" in shown
    plain = cards.mrkdwn_to_text(text)  # plain text keeps the marks as typed
    assert plain.startswith("*Root cause* in `pool_in_use[5m]` per the board (https://")


def test_render_text_markup_survives_hostile_urls_and_labels():
    incident = make_incident(title="[bold]x[/bold] <&>")
    blocks = cards.incident_card(
        incident, page_url="https://f.example.com/incidents/7?token=a]b[c"
    )[1]
    markup = cards.render_text(blocks, markup=True)
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(markup)
    assert "[bold]x[/bold] <&>" in out.getvalue()  # printed as written, not as markup
    link = "🌐 Open in Firebreak (https://f.example.com/incidents/7?token=a]b[c) ]"
    assert link in out.getvalue()
    out = io.StringIO()  # a terminal: the button is a hyperlink to the whole URL
    Console(file=out, width=200, color_system="standard", force_terminal=True).print(markup)
    assert "https://f.example.com/incidents/7?token=a%5Db%5Bc" in out.getvalue()


def test_mention_passes_only_one_formatted_user_group_or_channel():
    assert cards.mention("<@U0ALICE>") == "<@U0ALICE>"
    assert cards.mention("<!subteam^S0SRE>") == "<!subteam^S0SRE>"
    assert cards.mention("<#C0OPS>") == "<#C0OPS>"
    for hostile in ("<!channel>", "<!here>", "<https://evil.example|x>", "<@U0A> <!channel>"):
        assert "<" not in cards.mention(hostile), hostile


def test_the_postmortem_block_is_escaped():
    message = cards.postmortem_message(7, "# Title <!channel> & <@U0BOSS>\n")
    assert message is not None
    text = message[1][0].to_dict()["text"]
    assert text == "# Title &lt;!channel&gt; &amp; &lt;@U0BOSS&gt;\n"
