"""The RCA card reads an evidence item's structured reading: a metric is named from its query
and series labels, never taken apart from the text the model was shown."""

from __future__ import annotations

from datetime import UTC, datetime

from firebreak.agents.grounding import ground
from firebreak.agents.schema import RootCauseAnalysis
from firebreak.bot.console import render_text
from firebreak.bot.messages.rca import rca_card
from firebreak.store.schemas import EvidenceItem, ExecutionStatus
from firebreak.tools.models import Evidence, LogLine, MetricReading
from tests.bot.messages.builders import make_analysis, make_incident
from tests.support.analyses import rca_answer

RATIO = (
    'sum(rate(http_requests_total{service="checkout",code=~"5.."}[5m])) / '
    'sum(rate(http_requests_total{service="checkout"}[5m]))'
)


def _cited(evidence: Evidence) -> list[EvidenceItem]:
    refs = [item.ref for item in [*evidence.metrics, *evidence.logs]]
    answer = rca_answer(*refs, root_cause="The payment pool is exhausted", reasoning="M1 and L1.")
    rca = RootCauseAnalysis.model_validate(answer)
    return ground(rca, evidence).items


def test_metric_lines_come_from_the_structured_reading() -> None:
    changed = datetime(2026, 12, 1, 9, 55, tzinfo=UTC)
    evidence = Evidence(
        metrics=[
            # a label value with a comma: the text form `{pool=a,b}` cannot be taken apart
            MetricReading(
                ref="M1",
                source="prom",
                query="connection_pool_in_use",
                series={"pool": "payment,gateway", "service": "checkout"},
                baseline=5.1,
                current=10,
                peak=10,
                changed_at=changed,
            ),
            MetricReading(
                ref="M2", source="prom", query=RATIO, series={"service": "checkout"}, current=0.25
            ),
        ],
        logs=[LogLine(ref="L1", source="loki", text="ERROR pool exhausted", timestamp=changed)],
    )
    items = _cited(evidence)
    pool, _, line = items
    assert pool.metric is not None and pool.metric.labels["pool"] == "payment,gateway"
    assert line.line is not None and line.line.line == "ERROR pool exhausted"
    assert line.line.timestamp == changed

    analysis = make_analysis(evidence=items, execution_status=ExecutionStatus.COMPLETED)
    page = render_text(rca_card(make_incident(), analysis)[1])
    assert (
        'connection_pool_in_use{pool="payment,gateway",service="checkout"} baseline=5.1 '
        "current=10 peak=10, changed at 2026-12-01T09:55:00+00:00"
    ) in page
    assert 'http_requests_total{code=~"5.."} baseline=' in page
    assert "sum(rate(" not in page
