"""The log-fetcher agent: every configured log source, queried concurrently.

A source that fails does not fail the investigation: its error is reported on the timeline
and the other sources' evidence is still used.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime as GraphRuntime

from firebreak.agents.context import Deps
from firebreak.agents.gathering import fetch_every
from firebreak.agents.state import InvestigationState
from firebreak.tools.sources import open_log_source


async def fetch_logs(state: InvestigationState, runtime: GraphRuntime[Deps]) -> dict[str, Any]:
    deps = runtime.context
    sources = [
        open_log_source(source, http=deps.http, breaker=deps.breakers.get(source.name))
        for source in deps.settings.sources.logs
    ]
    investigation = deps.settings.investigation
    return await fetch_every(sources, state.opened(), investigation, "logs")
