"""Incidents, analyses and the checks every card test makes: serialised by slack-sdk, within
Slack's limits."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from slack_sdk.models.blocks import Block

from firebreak.bot.messages.blocks import MAX_BLOCKS
from firebreak.bot.messages.incident import (
    ACTION_ACK,
    ACTION_ESCALATE,
    ACTION_INVESTIGATE,
    ACTION_RESOLVE,
)
from firebreak.store.schemas import (
    AlertOut,
    Analysis,
    Attempt,
    EvidenceItem,
    ExecutionStatus,
    IncidentOut,
    IncidentStatus,
    SlackRef,
)
from tests.fakes.slack_api import block_errors

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
INCIDENT_BUTTONS = {
    ACTION_ACK,
    ACTION_ESCALATE,
    ACTION_RESOLVE,
    ACTION_INVESTIGATE,
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
    assert 0 < len(blocks) <= MAX_BLOCKS
    data = [b.to_dict() for b in blocks]
    assert block_errors(data, limit=MAX_BLOCKS) == []
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
