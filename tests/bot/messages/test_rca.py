"""The RCA reply: its sections, the evidence it shows, its bounds, the postmortem message."""

from __future__ import annotations

from firebreak.bot.console import render_text
from firebreak.bot.messages.rca import (
    CLUSTER_EVIDENCE_SHOWN,
    METRIC_EVIDENCE_SHOWN,
    postmortem_message,
    rca_card,
)
from firebreak.bot.messages.remediation import (
    ACTION_REMEDIATION_APPROVE,
    ACTION_REMEDIATION_REJECT,
    remediation_card,
)
from firebreak.store.schemas import (
    Analysis,
    Attempt,
    EvidenceItem,
    ExecutionStatus,
    RemediationParameter,
    RemediationProposal,
)
from tests.bot.messages.builders import (
    all_text,
    blocks_json,
    buttons,
    make_analysis,
    make_incident,
)

# ---------------------------------------------------------------------- RCA card


def test_rca_card_sections():
    text, blocks = rca_card(make_incident(), make_analysis())
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


def test_an_analysis_without_evidence_says_so_and_how_to_add_some():
    body = all_text(blocks_json(rca_card(make_incident(), make_analysis(evidence=[]))[1]))
    assert "No evidence:" in body and "sources.logs" in body and "Re-investigate" in body
    with_evidence = all_text(blocks_json(rca_card(make_incident(), make_analysis())[1]))
    assert "No evidence:" not in with_evidence


def test_rca_card_counts_the_follow_up_queries():
    def context(analysis: Analysis) -> str:
        return all_text(blocks_json(rca_card(make_incident(), analysis)[1])[-1:])

    assert "follow-up" not in context(make_analysis())
    assert "3 follow-up queries" in context(make_analysis(tool_calls=3))
    assert "1 follow-up query" in context(make_analysis(tool_calls=1))


def test_fallback_card_says_offline_at_the_top():
    analysis = make_analysis(
        execution_status=ExecutionStatus.RECOVERED_FALLBACK,
        provider="offline",
        attempts=[Attempt(number=1, provider="ollama", ok=False, error="connection refused")],
    )
    text, blocks = rca_card(make_incident(), analysis)
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
    data = blocks_json(rca_card(make_incident(), analysis)[1])
    sections = [b["text"]["text"] for b in data if b["type"] == "section" and "text" in b]
    cluster = next(s for s in sections if s.startswith("*Cluster findings*"))
    assert cluster.count("\n• ") == CLUSTER_EVIDENCE_SHOWN
    assert "• *prod* 2026-12-01T10:14:00+00:00 Pod/checkout-1 (x3): Back-off restarting " in cluster
    assert "&lt;c&gt;" in cluster and "`K1`" in cluster
    assert f"…and {10 - CLUSTER_EVIDENCE_SHOWN} more findings" in cluster
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
    _, blocks = rca_card(make_incident(), analysis)
    data = blocks_json(blocks)
    sections = [b["text"]["text"] for b in data if b["type"] == "section" and "text" in b]
    root = next(s for s in sections if s.startswith("*Root cause*"))
    assert len(root) == 3000 and root.endswith("…")
    logs = next(s for s in sections if s.startswith("*Key log lines*"))
    assert logs.count("```") == 2  # the code block is closed, not cut in half
    assert "more log lines" in logs
    metrics = next(s for s in sections if s.startswith("*Key metrics*"))
    shown = metrics.count("\n• ")
    assert 1 <= shown <= METRIC_EVIDENCE_SHOWN
    assert f"…and {250 - shown} more metric readings" in metrics
    assert not buttons(data)  # the proposal has its own message: one approval message
    _, approval = remediation_card(7, proposal, approval="inv-7-abc")
    assert set(buttons(blocks_json(approval))) == {
        ACTION_REMEDIATION_APPROVE,
        ACTION_REMEDIATION_REJECT,
    }


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
    page = render_text(rca_card(make_incident(), analysis)[1])
    assert 'http_requests_total{code=~"5.."} baseline=0.002' in page
    assert 'connection_pool_in_use{pool="payment-gateway",service="checkout"} baseline' in page
    assert "}{" not in page and "sum(rate(" not in page


def test_the_postmortem_block_is_escaped():
    message = postmortem_message(7, "# Title <!channel> & <@U0BOSS>\n")
    assert message is not None
    text = message[1][0].to_dict()["text"]
    assert text == "# Title &lt;!channel&gt; &amp; &lt;@U0BOSS&gt;\n"
