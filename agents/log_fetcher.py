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
from firebreak.tools import elasticsearch, files, loki
from firebreak.tools.config import ElasticsearchSource, FileSource, LokiSource
from firebreak.tools.models import AlertContext, LogLine, SourceReport


async def fetch_logs(state: InvestigationState, runtime: GraphRuntime[Deps]) -> dict[str, Any]:
    deps = runtime.context
    config = deps.settings
    alert = state.opened()
    results = await asyncio.gather(*(_fetch(source, alert, deps) for source in config.sources.logs))
    lines = [line for found, _ in results for line in found]
    return {"logs": lines, "reports": [report for _, report in results]}


async def _fetch(
    source: LokiSource | ElasticsearchSource | FileSource, alert: AlertContext, deps: Deps
) -> tuple[list[LogLine], SourceReport]:
    investigation = deps.settings.investigation
    match source:
        case LokiSource():
            return await loki.fetch_logs(
                source,
                alert,
                investigation,
                client=deps.http,
                breaker=deps.breakers.get(source.name),
            )
        case ElasticsearchSource():
            return await elasticsearch.fetch_logs(
                source,
                alert,
                investigation,
                client=deps.http,
                breaker=deps.breakers.get(source.name),
            )
        case FileSource():
            return await files.fetch_logs(source, alert, investigation)
