"""The investigation graph. Wiring only; each node lives in its own module.

open_investigation ─┬─ fetch_logs ──────┬─ join_evidence ─ followup ─┬─ analyse ─ publish ─┬─ END
                    ├─ read_metrics ────┤               ▲            │                     │
                    └─ read_kubernetes ─┘               └ use_tools ─┘ (while tools called) │
     ┌──────────────────────────────────────────────────────────────────────────────────────┘
     └─ propose_remediation ─ await_approval (interrupt) ─ apply_decision ─ END
"""

from __future__ import annotations

from typing import TypeAlias

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import RetryPolicy

from firebreak.agents.context import Deps
from firebreak.agents.evidence import join_evidence
from firebreak.agents.followup import after_followup, followup
from firebreak.agents.intake import open_investigation
from firebreak.agents.kube_reader import read_kubernetes
from firebreak.agents.log_fetcher import fetch_logs
from firebreak.agents.metrics_reader import read_metrics
from firebreak.agents.publisher import publish
from firebreak.agents.reasoning import analyse
from firebreak.agents.remediation import (
    apply_decision,
    await_approval,
    needs_approval,
    propose_remediation,
)
from firebreak.agents.state import InvestigationState
from firebreak.agents.tool_calls import use_tools

# The fetchers report source failures as evidence instead of raising; a retry here only
# covers the unexpected (a database hiccup while writing the timeline, say).
RETRY = RetryPolicy(max_attempts=2, initial_interval=0.2)


# The compiled investigation: its state in and out, the run's `Deps` as its context.
InvestigationGraph: TypeAlias = CompiledStateGraph[
    InvestigationState, Deps, InvestigationState, InvestigationState
]


def build_graph(checkpointer: BaseCheckpointSaver | None = None) -> InvestigationGraph:
    graph = StateGraph(InvestigationState, context_schema=Deps)
    graph.add_node("open_investigation", open_investigation, retry_policy=RETRY)
    graph.add_node("fetch_logs", fetch_logs, retry_policy=RETRY)
    graph.add_node("read_metrics", read_metrics, retry_policy=RETRY)
    graph.add_node("read_kubernetes", read_kubernetes, retry_policy=RETRY)
    graph.add_node("join_evidence", join_evidence, retry_policy=RETRY)
    graph.add_node("followup", followup)  # an LLM call: a retry is the gateway's business
    graph.add_node("use_tools", use_tools, retry_policy=RETRY)
    graph.add_node("analyse", analyse)
    graph.add_node("publish", publish, retry_policy=RETRY)
    graph.add_node("propose_remediation", propose_remediation)
    graph.add_node("await_approval", await_approval)
    graph.add_node("apply_decision", apply_decision)

    graph.add_edge(START, "open_investigation")
    graph.add_edge("open_investigation", "fetch_logs")
    graph.add_edge("open_investigation", "read_metrics")
    graph.add_edge("open_investigation", "read_kubernetes")
    graph.add_edge(["fetch_logs", "read_metrics", "read_kubernetes"], "join_evidence")
    graph.add_edge("join_evidence", "followup")
    graph.add_conditional_edges("followup", after_followup, ["use_tools", "analyse"])
    graph.add_edge("use_tools", "followup")
    graph.add_edge("analyse", "publish")
    graph.add_conditional_edges("publish", needs_approval, ["propose_remediation", END])
    graph.add_edge("propose_remediation", "await_approval")
    graph.add_edge("await_approval", "apply_decision")
    graph.add_edge("apply_decision", END)
    return graph.compile(checkpointer=checkpointer)
