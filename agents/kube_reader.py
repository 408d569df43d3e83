"""The Kubernetes agent: what every configured cluster says about the alert's pods, read
alongside the logs and the metrics (pods, Warning events, the last lines of crashed
containers, Jobs, rollouts).

A cluster that cannot be read does not fail the investigation: its error is reported on the
timeline like any source's. Each cluster's circuit breaker is honoured: an open one is reported
at once without a request, and a read that got nothing at all because the cluster failed
counts against it (a read that found something, with some calls failing, does not).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from langgraph.runtime import Runtime as GraphRuntime

from firebreak.agents.context import Deps
from firebreak.agents.state import InvestigationState
from firebreak.tools.breaker import Breaker
from firebreak.tools.errors import Category, CircuitOpenError, SourceError
from firebreak.tools.kubernetes import KubernetesSource, fetch_kubernetes
from firebreak.tools.models import AlertContext, KubeFinding, SourceReport


async def read_kubernetes(state: InvestigationState, runtime: GraphRuntime[Deps]) -> dict[str, Any]:
    deps = runtime.context
    alert = state.opened()
    clusters = deps.settings.sources.kubernetes
    results = await asyncio.gather(*(_read(cluster, alert, deps) for cluster in clusters))
    findings = [finding for found, _ in results for finding in found]
    return {"kubernetes": findings, "reports": [report for _, report in results]}


class _NothingRead(SourceError):
    """The cluster gave nothing and said why: a failure of the cluster, for its breaker."""

    def __init__(self, report: SourceReport) -> None:
        super().__init__(report.error or "nothing read", category=Category.TRANSIENT)
        self.report = report


async def _read(
    source: KubernetesSource, alert: AlertContext, deps: Deps
) -> tuple[list[KubeFinding], SourceReport]:
    investigation = deps.settings.investigation

    async def fetch() -> tuple[list[KubeFinding], SourceReport]:
        found, report = await fetch_kubernetes(
            source,
            alert,
            lookback_s=investigation.lookback_s,
            lookahead_s=investigation.lookahead_s,
        )
        if report.error and not found:
            raise _NothingRead(report)
        return found, report

    breaker: Breaker | None = deps.breakers.get(source.name)
    if breaker is None:
        try:
            return await fetch()
        except _NothingRead as failed:
            return [], failed.report
    began = time.perf_counter()
    try:
        return await breaker.call(fetch)
    except _NothingRead as failed:
        return [], failed.report
    except CircuitOpenError as exc:
        report = SourceReport(source=source.name, kind="kubernetes")
        return [], report.finish(0, [str(exc)], began)
