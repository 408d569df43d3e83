"""A realistic incident for the page tests and the README screenshot.

checkout's v2.14.0 release halves its database pool: 5xx and latency climb two minutes
later, the alert fires, Firebreak analyses (two metric readings with their points, six log
lines), pages, Alice acknowledges and approves a rollback, which runs and is verified.
Stored through the real ingest and `save_analysis`; the story's timeline events get their own
times (the store stamps "now"), so the page reads like the real thing.

`python -m tests.bot.web.seed docs/incident-page.png` serves it and takes the screenshot.
"""

from __future__ import annotations

import asyncio
import math
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, update

from firebreak.incidents.ingest import ingest
from firebreak.store import incidents
from firebreak.store.models import Incident, RemediationRun, TimelineEvent
from firebreak.store.payloads import AlertmanagerPayload
from firebreak.store.schemas import Analysis, EvidenceItem, ExecutionStatus
from firebreak.store.writer import Writer
from tests.support.payloads import alert, group

ERRORS_QUERY = 'sum by (service) (rate(http_requests_total{service="checkout",status=~"5.."}[5m]))'
LATENCY_QUERY = (
    "histogram_quantile(0.99, sum by (le) "
    '(rate(http_request_duration_seconds_bucket{service="checkout"}[5m])))'
)
ROOT_CAUSE = (
    "Release v2.14.0 of checkout [L1] lowered the payments-db connection pool from 40 to 20. "
    "Within a minute requests queued for a connection and failed [L2, L4]: 5xx went from "
    "0.02/s to about 5/s [M1] and p99 latency from 0.2 s to 2.4 s [M2]."
)


@dataclass(frozen=True)
class Seeded:
    incident_id: int
    alert_start: datetime
    title: str


def _series(start: datetime, change: datetime, base: float, high: float) -> list[list[Any]]:
    """88 points every 30 s: noise around `base`, a ramp to `high` after `change`."""
    points = []
    for i in range(88):
        at = start + timedelta(seconds=30 * i)
        wobble = 1 + 0.12 * math.sin(i * 1.7) + 0.06 * math.cos(i * 0.9)
        after = (at - change).total_seconds()
        level = base if after < 0 else base + (high - base) * min(1.0, after / 150)
        points.append([at.isoformat().replace("+00:00", "Z"), round(level * wobble, 4)])
    return points


def evidence(alert_start: datetime) -> dict[str, Any]:
    """The gathered evidence as `join_evidence` stores it, with `samples` on each reading."""
    window = alert_start - timedelta(minutes=30)
    change = alert_start - timedelta(seconds=90)

    def stamp(seconds: int) -> str:
        return (alert_start + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")

    def metric(ref: str, query: str, base: float, high: float, shift_s: int) -> dict[str, Any]:
        samples = _series(window, change + timedelta(seconds=shift_s), base, high)
        return {
            "ref": ref,
            "source": "prometheus",
            "query": query,
            "series": {"service": "checkout"},
            "current": samples[-1][1],
            "baseline": base,
            "peak": max(v for _, v in samples),
            "changed_at": stamp(-90 + shift_s),
            "points": len(samples),
            "samples": samples,
        }

    def log(ref: str, at: int, text: str, count: int = 1) -> dict[str, Any]:
        return {"ref": ref, "source": "loki", "timestamp": stamp(at), "text": text, "count": count}

    return {
        "metrics": [
            metric("M1", ERRORS_QUERY, 0.02, 5.1, 0),
            metric("M2", LATENCY_QUERY, 0.19, 2.4, -20),
        ],
        "logs": [
            log(
                "L1", -140, "deploy: rolled out checkout v2.14.0 (image checkout:2.14.0, 6/6 ready)"
            ),
            log(
                "L2",
                -89,
                "ERROR pool exhausted: timed out after 5000ms waiting for a connection "
                "(pool=payments-db, size=20, in use=20)",
                412,
            ),
            log("L3", -85, "WARN retrying payment authorisation for order <N> (attempt 2/3)", 96),
            log(
                "L4",
                -60,
                'ERROR POST /api/checkout status=503 duration=5012ms error="no connection"',
                380,
            ),
            log("L5", -30, "INFO health check ok (db: degraded)", 12),
            log("L6", 40, "WARN circuit payments-db half-open, probing", 3),
        ],
        "reports": [
            {"source": "prometheus", "kind": "prometheus", "items": 2, "elapsed_ms": 84.0},
            {"source": "loki", "kind": "loki", "items": 903, "elapsed_ms": 212.5},
        ],
    }


def analysis(alert_start: datetime) -> Analysis:
    return Analysis(
        root_cause=ROOT_CAUSE,
        reasoning=(
            "The first pool errors [L2] follow the rollout [L1] by 51 s, and both metrics change "
            "at the same minute [M1, M2]. Nothing else changed in the window; the retries [L3] "
            "are a consequence, not a cause."
        ),
        mitigation="Roll checkout back to v2.13.2, or raise DB_POOL_SIZE back to 40.",
        prevention=(
            "Load-test pool settings before release; alert on pool saturation, not only on 5xx."
        ),
        recommendation="Roll back now; then compare the pool settings of v2.13.2 and v2.14.0.",
        confidence_score=78,
        execution_status=ExecutionStatus.COMPLETED,
        evidence=[
            EvidenceItem(ref="L1", kind="log", source="loki", text="deploy: rolled out v2.14.0"),
            EvidenceItem(ref="L2", kind="log", source="loki", text="ERROR pool exhausted"),
            EvidenceItem(ref="M1", kind="metric", source="prometheus", text=ERRORS_QUERY),
        ],
        provider="ollama",
        model="llama3.1:8b",
        created_at=alert_start + timedelta(seconds=48),
    )


STORY = [  # (seconds after the alert, type, actor, message)
    (12, "AI_ANALYSIS_STARTED", "firebreak", "Investigation started"),
    (31, "EVIDENCE_COLLECTED", "firebreak", "Evidence collected: 6 log lines, 2 metric readings"),
    (48, "ROOT_CAUSE_GENERATED", "firebreak", "Root cause (78% confidence): release v2.14.0"),
    (300, "ESCALATED", "firebreak", "Paged level 1: <@U0ONCALL1>"),
    (372, "ACKNOWLEDGED", "U0ALICE", "Acknowledged by U0ALICE"),
    (410, "REMEDIATION_PROPOSED", "firebreak", "Proposed rollback_deployment(checkout, v2.13.2)"),
    (455, "REMEDIATION_APPROVED", "U0ALICE", "Approved by U0ALICE"),
    (470, "REMEDIATION_EXECUTED", "firebreak", "rollback_deployment ran: ok"),
    (650, "REMEDIATION_VERIFIED", "firebreak", "Verified: 5xx rate 0.03/s below 0.5/s"),
]


async def seed_incident(writer: Writer, alert_start: datetime, *, story: bool = True) -> Seeded:
    """The checkout incident; `story` adds the escalation, acknowledgement and rollback."""
    alerts = [
        alert(f"c{i}", starts_at=alert_start + timedelta(seconds=20 * i), service="checkout")
        for i in range(3)
    ]
    payload = AlertmanagerPayload.model_validate(group("checkout-5xx", alerts))
    outcome = await writer.run(
        partial(ingest, payload=payload, now=alert_start + timedelta(seconds=5), reopen_window_s=0)
    )
    incident_id = outcome.incident_id
    assert incident_id is not None
    await writer.run(
        partial(
            incidents.save_analysis,
            incident_id=incident_id,
            analysis=analysis(alert_start),
            evidence=evidence(alert_start),
        )
    )
    if story:
        await writer.run(partial(_story, incident_id=incident_id, alert_start=alert_start))
    return Seeded(incident_id, alert_start, "HighErrorRate: checkout is failing requests")


def _story(conn: Connection, incident_id: int, alert_start: datetime) -> None:
    def at(seconds: int) -> datetime:
        return alert_start + timedelta(seconds=seconds)

    conn.execute(  # ingest stamped its own events "now"
        update(TimelineEvent).where(TimelineEvent.incident_id == incident_id).values(at=at(5))
    )
    for seconds, kind, actor, message in STORY:
        conn.execute(
            insert(TimelineEvent).values(
                incident_id=incident_id, at=at(seconds), type=kind, actor=actor, message=message
            )
        )
    conn.execute(
        update(Incident)
        .where(Incident.id == incident_id)
        .values(
            status="acknowledged",
            acknowledged_at=at(372),
            acknowledged_by="U0ALICE",
            escalation_level=1,
        )
    )
    conn.execute(
        insert(RemediationRun).values(
            incident_id=incident_id,
            action="rollback_deployment",
            definition={},
            parameters={"deployment": "checkout", "revision": "v2.13.2"},
            reason="v2.14.0 lowered the pool size; v2.13.2 ran fine for a week",
            approved_by="U0ALICE",
            created_at=at(455),
            updated_at=at(650),
            phase="done",
            step=3,
            ok=True,
            output="deployment.apps/checkout rolled back (revision 41 -> 40)\n6/6 pods ready",
            verified=True,
        )
    )


async def _screenshot(target: Path) -> None:
    from firebreak.config import Config
    from tests.bot.web.browser import screenshot
    from tests.support.app import run_app

    with tempfile.TemporaryDirectory() as tmp:
        config = Config(store={"url": f"sqlite+aiosqlite:///{tmp}/firebreak.db"})
        async with run_app(config) as app:
            now = datetime.now(UTC).replace(microsecond=0)
            seeded = await seed_incident(app.runtime.writer, now - timedelta(minutes=14))
            await screenshot(
                f"{app.url}/incidents/{seeded.incident_id}", target, Path(tmp), (1440, 2000)
            )


if __name__ == "__main__":
    asyncio.run(_screenshot(Path(sys.argv[1] if len(sys.argv) > 1 else "incident-page.png")))
