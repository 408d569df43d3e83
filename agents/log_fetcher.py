"""The log-fetcher agent: every configured log source, queried concurrently.

A source that fails does not fail the investigation: its error is reported on the timeline
and the other sources' evidence is still used.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.runtime import Runtime as GraphRuntime

from firebreak.agents.context import Deps
from firebreak.agents.state import InvestigationState
from firebreak.tools.sources import open_log_source


async def fetch_logs(state: InvestigationState, runtime: GraphRuntime[Deps]) -> dict[str, Any]:
    deps = runtime.context
    config = deps.settings
    alert = state.opened()
    sources = [
        open_log_source(source, http=deps.http, breaker=deps.breakers.get(source.name))
        for source in config.sources.logs
    ]
    results = await asyncio.gather(
        *(source.fetch(alert, config.investigation) for source in sources)
    )
    lines = [line for found, _ in results for line in found]
    return {"logs": lines, "reports": [report for _, report in results]}
