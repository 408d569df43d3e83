"""The metrics-reader agent: the alert's own expression and the configured queries, from every
configured Prometheus, summarised for a reader who cannot look at a graph."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime as GraphRuntime

from firebreak.agents.context import Deps
from firebreak.agents.gathering import fetch_every
from firebreak.agents.state import InvestigationState
from firebreak.tools.sources import open_metric_source


async def read_metrics(state: InvestigationState, runtime: GraphRuntime[Deps]) -> dict[str, Any]:
    deps = runtime.context
    sources = [
        open_metric_source(source, http=deps.http, breaker=deps.breakers.get(source.name))
        for source in deps.settings.sources.metrics
    ]
    investigation = deps.settings.investigation
    return await fetch_every(sources, state.opened(), investigation, "metrics")
