"""First node: what is being investigated. Turns the stored incident into the alert context
the query templates see, recalls earlier incidents like it (store/memory.py: the reasoning
agent's history, refs `H1`…), and marks the start on the timeline."""

from __future__ import annotations

from functools import partial
from typing import Any

from langgraph.runtime import Runtime as GraphRuntime

from firebreak.agents.context import Deps
from firebreak.agents.state import InvestigationState
from firebreak.store import incidents, memory
from firebreak.store.incidents import record_run_event
from firebreak.store.schemas import EventType, IncidentOut
from firebreak.tools.models import AlertContext

FIREBREAK = "firebreak"


async def open_investigation(
    state: InvestigationState, runtime: GraphRuntime[Deps]
) -> dict[str, Any]:
    deps = runtime.context
    async with deps.engine.connect() as conn:
        incident = await incidents.get_incident(conn, state.incident_id)
        history = await memory.history(conn, state.incident_id)
    if incident is None:
        raise LookupError(f"incident {state.incident_id} does not exist")
    await deps.writer.run(  # once per run, also when a resumed run opens again
        partial(
            record_run_event,
            incident_id=incident.id,
            kind=EventType.AI_ANALYSIS_STARTED,
            actor=FIREBREAK,
            message="Investigation started",
            data={"run_id": state.run_id},
        )
    )
    return {"alert": alert_context(incident), "history": history}


def alert_context(incident: IncidentOut) -> AlertContext:
    """The alert as the query templates see it (`IncidentOut.alert_facts`: the same rule as
    a replayed case's)."""
    return AlertContext.model_validate(incident.alert_facts().model_dump())
