"""The metrics-reader agent: the alert's own expression and the configured queries, from every
configured Prometheus, summarised for a reader who cannot look at a graph."""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.runtime import Runtime as GraphRuntime

from firebreak.agents.context import Deps
from firebreak.agents.state import InvestigationState
from firebreak.tools.sources import open_metric_source


async def read_metrics(state: InvestigationState, runtime: GraphRuntime[Deps]) -> dict[str, Any]:
    deps = runtime.context
    config = deps.settings
    alert = state.opened()
    sources = [
        open_metric_source(source, http=deps.http, breaker=deps.breakers.get(source.name))
        for source in config.sources.metrics
    ]
    results = await asyncio.gather(
        *(source.fetch(alert, config.investigation) for source in sources)
    )
    readings = [reading for found, _ in results for reading in found]
    return {"metrics": readings, "reports": [report for _, report in results]}
