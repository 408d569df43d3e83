"""The investigation graph's state.

Everything here is plain JSON (dicts, lists, strings) so checkpoints stay readable and portable
between the SQLite and PostgreSQL savers; nodes turn it into pydantic models when they work.
The evidence lists have reducers because the log, metric and Kubernetes agents write them in
parallel; the follow-up loop's lists have them so each step only adds its own part.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict


class InvestigationState(TypedDict, total=False):
    incident_id: int
    run_id: str
    alert: dict[str, Any]  # tools.models.AlertContext
    logs: Annotated[list[dict[str, Any]], operator.add]  # tools.models.LogLine
    metrics: Annotated[list[dict[str, Any]], operator.add]  # tools.models.MetricReading
    kubernetes: Annotated[list[dict[str, Any]], operator.add]  # tools.models.KubeFinding
    reports: Annotated[list[dict[str, Any]], operator.add]  # tools.models.SourceReport
    evidence: dict[str, Any]  # tools.models.Evidence, ranked, capped and redacted
    # The follow-up loop (agents/followup.py): the conversation after the RCA prompt (the
    # model's calls, the results), each call made with the items it found, and how it ended.
    turns: Annotated[list[dict[str, Any]], operator.add]
    calls: Annotated[list[dict[str, Any]], operator.add]  # agents.tool_calls.CallRecord
    followup: dict[str, Any]  # agents.reasoning.Opening fields, plus `ended`
    history: list[dict[str, Any]]  # store.schemas.HistoryRef: earlier incidents like this one
    analysis: dict[str, Any]  # store.schemas.Analysis
    decision: dict[str, Any]  # a human's answer to a remediation proposal
