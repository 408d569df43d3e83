"""The Kubernetes agent: what every configured cluster says about the alert's pods, read
alongside the logs and the metrics (pods, Warning events, the last lines of crashed
containers, Jobs, rollouts).

A cluster that cannot be read does not fail the investigation: its error is reported on the
timeline like any source's. Each cluster's circuit breaker is honoured (tools/kubernetes.py
`KubeCluster.fetch`).
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime as GraphRuntime

from firebreak.agents.context import Deps
from firebreak.agents.gathering import fetch_every
from firebreak.agents.state import InvestigationState
from firebreak.tools.sources import open_cluster


async def read_kubernetes(state: InvestigationState, runtime: GraphRuntime[Deps]) -> dict[str, Any]:
    deps = runtime.context
    sources = [
        open_cluster(cluster, breaker=deps.breakers.get(cluster.name))
        for cluster in deps.settings.sources.kubernetes
    ]
    investigation = deps.settings.investigation
    return await fetch_every(sources, state.opened(), investigation, "kubernetes")
