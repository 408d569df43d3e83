"""What the graph's nodes need besides the state: passed per run, never checkpointed.

Everything a node touches is named here, so a node cannot reach for more and a missing part
fails when the investigations start, not in the middle of a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import httpx
from prometheus_client import Counter, Histogram
from sqlalchemy.ext.asyncio import AsyncEngine

from firebreak.agents.tool_results import ToolMetrics
from firebreak.incidents.events import EventBus
from firebreak.incidents.ports import Notifier
from firebreak.remediation.flows import ApprovedRemediation
from firebreak.store.writer import Writer
from firebreak.tools.breaker import BreakerBoard
from firebreak.tools.config import InvestigationConfig, RemediationAction
from firebreak.tools.llm import LLMGateway
from firebreak.tools.redact import Redactor
from firebreak.tools.sources import SourcesConfig


class Remediations(Protocol):
    """What the remediation pause needs: schedule what a human approved."""

    async def schedule(self, approved: ApprovedRemediation) -> None: ...


@dataclass(frozen=True)
class Settings:
    """The configuration the nodes read."""

    sources: SourcesConfig
    investigation: InvestigationConfig
    actions: list[RemediationAction]  # the allowlist a proposal is held to
    max_json_retries: int
    approve_later_s: float


@dataclass(frozen=True)
class Deps:
    engine: AsyncEngine  # reads: the incident, its evidence
    writer: Writer  # every write: the timeline, the analysis, the run's status
    bus: EventBus  # tells the card that the analysis is in
    notifier: Notifier  # the RCA and the remediation proposal in the thread
    remediations: Remediations
    gateway: LLMGateway | None
    redactor: Redactor  # the one redactor: evidence, prompts, answers
    http: httpx.AsyncClient  # shared by the log and metric clients
    breakers: BreakerBoard  # each source's circuit breaker, by the source's name
    finished: Counter  # investigations finished, by execution status
    settings: Settings
    tool_metrics: ToolMetrics  # the follow-up tool calls' counter and histogram
    prompt_tokens: Histogram  # the RCA prompt's size, per analysis
