"""The remediation pause: a proposed action waits for a human, then is scheduled or dropped.

Three nodes so that only the pause re-runs on resume (LangGraph re-runs an interrupted node
from its start): `propose_remediation` has the side effects (timeline, the one approval
message), `await_approval` only waits, `apply_decision` acts on the answer and updates that
same message with the decision.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

from langgraph.runtime import Runtime as GraphRuntime
from langgraph.types import interrupt
from sqlalchemy import Connection

from firebreak.agents.context import Deps
from firebreak.agents.intake import FIREBREAK
from firebreak.agents.state import ApprovalDecision, InvestigationState
from firebreak.incidents.notices import (
    RemediationDecided,
    RemediationProposed,
    RemediationSuperseded,
)
from firebreak.remediation.flows import ApprovedRemediation
from firebreak.store.incidents import record_event
from firebreak.store.investigations import (
    RunStatus,
    proposals_shown,
    set_status,
    supersede_waiting,
)
from firebreak.store.schemas import EventType, RemediationProposal


def needs_approval(state: InvestigationState) -> Literal["propose_remediation", "__end__"]:
    proposed = state.analysis is not None and state.analysis.remediation is not None
    return "propose_remediation" if proposed else "__end__"  # END, as the Literal says


async def propose_remediation(
    state: InvestigationState, runtime: GraphRuntime[Deps]
) -> dict[str, Any]:
    """Record the proposal and ask for a decision; a proposal of an earlier run still waiting
    is superseded in the same transaction (its message then says so), so only the newest can
    be approved."""
    deps = runtime.context
    incident_id = state.incident_id
    run_id = state.run_id
    proposal = _proposal(state)

    def record(conn: Connection) -> dict[str, Any]:
        superseded = supersede_waiting(conn, incident_id, run_id)
        record_event(
            conn,
            incident_id,
            EventType.REMEDIATION_PROPOSED,
            FIREBREAK,
            f"Proposed remediation: {proposal.action}",
            {**proposal.model_dump(mode="json"), "approval": run_id, "digest": proposal.digest()},
        )
        set_status(conn, run_id, RunStatus.AWAITING_APPROVAL)
        return proposals_shown(conn, incident_id, superseded)

    for older, shown in (await deps.writer.run(record)).items():
        deps.notifier.tell(
            incident_id,
            RemediationSuperseded(
                approval=older,
                proposal=RemediationProposal.model_validate(_fields(shown)),
                superseded_by=run_id,
            ),
        )
    deps.notifier.tell(
        incident_id,
        RemediationProposed(
            approval=run_id,
            proposal=proposal,
            approve_later_s=deps.settings.approve_later_s,
        ),
    )
    return {}


async def await_approval(state: InvestigationState) -> dict[str, ApprovalDecision]:
    decision = interrupt(
        {"incident_id": state.incident_id, "proposal": _proposal(state).model_dump(mode="json")}
    )
    return {"decision": ApprovalDecision.model_validate(decision)}


async def apply_decision(state: InvestigationState, runtime: GraphRuntime[Deps]) -> dict[str, Any]:
    deps = runtime.context
    incident_id = state.incident_id
    decision = state.decision
    assert decision is not None, "resumed here only with a decision"
    proposal = _proposal(state)
    actor = decision.actor
    # what the approver was shown must be what runs (checked before the decision was taken)
    approved = decision.approve and decision.digest == proposal.digest()
    delay_s = decision.delay_s
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
            data={
                "action": proposal.action,
                "delay_s": delay_s,
                "approval": state.run_id,
                "digest": proposal.digest(),
            },
        )
    )
    if approved:
        await deps.remediations.schedule(
            ApprovedRemediation(incident_id, proposal, actor, delay_s, key=state.run_id)
        )
    deps.notifier.tell(
        incident_id,
        RemediationDecided(
            approval=state.run_id,
            proposal=proposal,
            approved=approved,
            actor=actor,
            delay_s=delay_s,
        ),
    )
    return {}


def _proposal(state: InvestigationState) -> RemediationProposal:
    proposal = state.analysed().remediation
    assert proposal is not None, "routed here only with a proposal"
    return proposal


def _fields(shown: dict[str, Any]) -> dict[str, Any]:
    """A REMEDIATION_PROPOSED event's data less what the event adds to the proposal."""
    return {k: v for k, v in shown.items() if k not in ("approval", "digest")}
