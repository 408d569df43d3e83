"""The remediation pause: a proposed action waits for a human, then is scheduled or dropped.

Three nodes so that only the pause re-runs on resume (LangGraph re-runs an interrupted node
from its start): `propose_remediation` has the side effects (timeline, the one approval
message), `await_approval` only waits, `apply_decision` acts on the answer and updates that
same message with the decision.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

from langgraph.graph import END
from langgraph.runtime import Runtime as GraphRuntime
from langgraph.types import interrupt
from sqlalchemy import Connection

from firebreak.agents.context import Deps
from firebreak.agents.intake import FIREBREAK
from firebreak.agents.state import InvestigationState
from firebreak.incidents.notices import RemediationDecided, RemediationProposed
from firebreak.remediation.flows import ApprovedRemediation
from firebreak.store.incidents import record_event
from firebreak.store.investigations import RunStatus, set_status
from firebreak.store.schemas import Analysis, EventType, RemediationProposal


def needs_approval(state: InvestigationState) -> Literal["propose_remediation", "__end__"]:
    remediation = state.get("analysis", {}).get("remediation")
    return "propose_remediation" if remediation else END


async def propose_remediation(
    state: InvestigationState, runtime: GraphRuntime[Deps]
) -> dict[str, Any]:
    deps = runtime.context
    incident_id = state["incident_id"]
    proposal = _proposal(state)

    def record(conn: Connection) -> None:
        record_event(
            conn,
            incident_id,
            EventType.REMEDIATION_PROPOSED,
            FIREBREAK,
            f"Proposed remediation: {proposal.action}",
            proposal.model_dump(mode="json"),
        )
        set_status(conn, state["run_id"], RunStatus.AWAITING_APPROVAL)

    await deps.writer.run(record)
    deps.notifier.tell(
        incident_id,
        RemediationProposed(
            approval=state["run_id"],
            proposal=proposal,
            approve_later_s=deps.settings.approve_later_s,
        ),
    )
    return {}


async def await_approval(state: InvestigationState) -> dict[str, Any]:
    decision = interrupt(
        {"incident_id": state["incident_id"], "proposal": _proposal(state).model_dump(mode="json")}
    )
    return {"decision": decision}


async def apply_decision(state: InvestigationState, runtime: GraphRuntime[Deps]) -> dict[str, Any]:
    deps = runtime.context
    incident_id = state["incident_id"]
    decision = state["decision"]
    proposal = _proposal(state)
    actor = str(decision["actor"])
    approved = bool(decision["approve"])
    delay_s = float(decision.get("delay_s", 0))
    kind = EventType.REMEDIATION_APPROVED if approved else EventType.REMEDIATION_REJECTED
    verb = "approved" if approved else "rejected"
    when = f", runs in {delay_s / 60:g} min" if approved and delay_s else ""
    await deps.writer.run(
        partial(
            record_event,
            incident_id=incident_id,
            kind=kind,
            actor=actor,
            message=f"Remediation {proposal.action} {verb} by {actor}{when}",
            data={"action": proposal.action, "delay_s": delay_s},
        )
    )
    if approved:
        await deps.remediations.schedule(
            ApprovedRemediation(incident_id, proposal, actor, delay_s, key=state["run_id"])
        )
    deps.notifier.tell(
        incident_id,
        RemediationDecided(
            approval=state["run_id"],
            proposal=proposal,
            approved=approved,
            actor=actor,
            delay_s=delay_s,
        ),
    )
    return {}


def _proposal(state: InvestigationState) -> RemediationProposal:
    proposal = Analysis.model_validate(state["analysis"]).remediation
    assert proposal is not None, "routed here only with a proposal"
    return proposal
