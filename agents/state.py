"""The investigation graph's state: typed, and checkpointed after every step.

A pydantic model, so a node reads `state.alert` as an `AlertContext`, never a dict to convert,
and writes models back. LangGraph validates the checkpointed values into this model before
each node runs, which is also what lets a run checkpointed with plain JSON (an older version)
or read by a strict serializer (values it may not rebuild come back as their fields) resume.

The evidence lists have reducers because the log, metric and Kubernetes agents write them in
parallel; the follow-up loop's lists have them so each step only adds its own part. The loop's
conversation is LangChain messages with `add_messages`, as in LangGraph's own templates.

`CHECKPOINTED` names every type a checkpoint may rebuild (agents/runner.py gives the saver this
allowlist): nothing else is imported from a checkpoint.
"""

from __future__ import annotations

import operator
from enum import Enum
from typing import Annotated, Any, Literal, get_args

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from pydantic import BaseModel

from firebreak.store.schemas import Analysis, HistoryRef
from firebreak.tools.models import (
    AlertContext,
    Evidence,
    KubeFinding,
    LogLine,
    MetricReading,
    SourceReport,
)

__all__ = ["CHECKPOINTED", "ApprovalDecision", "CallRecord", "InvestigationState", "LoopEnd"]

Ended = Literal["off", "limit", "no_tools", "budget", "refused", "llm_error", "answered"]


class LoopEnd(BaseModel):
    """How the follow-up loop ended (agents/followup.py), with the model's closing answer or
    the LLM's failure when one ended it: the RCA's first attempt."""

    ended: Ended
    raw: str | None = None  # the answer without a tool call
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    elapsed_ms: float = 0.0
    error: str | None = None  # `kind: message` of the LLM's failure


class CallRecord(BaseModel):
    """One tool call the follow-up loop made, with the items it found (they join the
    evidence) and what the toolbox's repeat guard needs to know of it."""

    id: str
    tool: str
    arguments: dict[str, Any]
    key: str = ""
    refs: list[str] = []
    error: str | None = None
    outcome: str = "ok"
    seconds: float = 0.0
    items: list[LogLine | MetricReading | KubeFinding] = []


class ApprovalDecision(BaseModel):
    """A person's answer to a remediation proposal, as the graph is resumed with it."""

    approve: bool
    actor: str
    delay_s: float = 0.0
    digest: str | None = None  # the proposal the person was shown


class InvestigationState(BaseModel):
    incident_id: int
    run_id: str
    alert: AlertContext | None = None  # set by `open_investigation`, the first node
    history: list[HistoryRef] = []  # earlier incidents like this one (refs `H1`…)
    logs: Annotated[list[LogLine], operator.add] = []
    metrics: Annotated[list[MetricReading], operator.add] = []
    kubernetes: Annotated[list[KubeFinding], operator.add] = []
    reports: Annotated[list[SourceReport], operator.add] = []
    evidence: Evidence = Evidence()  # joined: ranked, capped and redacted
    # The follow-up loop: the conversation after the RCA prompt (the model's calls, their
    # results), each call made with the items it found, and how the loop ended.
    messages: Annotated[list[AnyMessage], add_messages] = []
    calls: Annotated[list[CallRecord], operator.add] = []
    followup: LoopEnd | None = None
    analysis: Analysis | None = None
    decision: ApprovalDecision | None = None

    def opened(self) -> AlertContext:
        """The alert under investigation (every node after `open_investigation` has it)."""
        if self.alert is None:
            raise LookupError(f"run {self.run_id} was not opened")
        return self.alert

    def analysed(self) -> Analysis:
        """The analysis (every node after `analyse` has it)."""
        if self.analysis is None:
            raise LookupError(f"run {self.run_id} has no analysis")
        return self.analysis


def _models(annotation: Any) -> set[type]:
    """The pydantic models and enums a field holds, nested ones included."""
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return {annotation}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found: set[type] = {annotation}
        for field in annotation.model_fields.values():
            found |= _models(field.annotation)
        return found
    return {found for arg in get_args(annotation) for found in _models(arg)}


CHECKPOINTED: frozenset[type] = frozenset(
    model
    for field in InvestigationState.model_fields.values()
    for model in _models(field.annotation)
    if model is not InvestigationState
)
