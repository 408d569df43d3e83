"""The remediation pause: a proposed action waits for a human, then is scheduled or dropped.

Three nodes so that only the pause re-runs on resume (LangGraph re-runs an interrupted node
from its start): `propose_remediation` has the side effects (timeline, the Approve / Reject
card), `await_approval` only waits, `apply_decision` acts on the answer.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.graph import END
from langgraph.runtime import Runtime as GraphRuntime
from langgraph.types import interrupt
from sqlalchemy import Connection

from firebreak.agents.context import Deps
from firebreak.agents.intake import FIREBREAK
from firebreak.agents.state import InvestigationState
from firebreak.bot.cards import mention, remediation_card
from firebreak.ports import ApprovedRemediation
from firebreak.store import incidents
from firebreak.store.investigations import RunStatus, set_status
from firebreak.store.schemas import Analysis, EventType, RemediationProposal


def needs_approval(state: InvestigationState) -> Literal["propose_remediation", "__end__"]:
    remediation = state.get("analysis", {}).get("remediation")
    return "propose_remediation" if remediation else END


async def propose_remediation(
    state: InvestigationState, runtime: GraphRuntime[Deps]
) -> dict[str, Any]:
    app = runtime.context.runtime
    incident_id = state["incident_id"]
    proposal = _proposal(state)

    def record(conn: Connection) -> None:
        incidents.record_event(
            conn,
            incident_id,
            EventType.REMEDIATION_PROPOSED,
            FIREBREAK,
            f"Proposed remediation: {proposal.action}",
            proposal.model_dump(mode="json"),
        )
        set_status(conn, state["run_id"], RunStatus.AWAITING_APPROVAL)

    await app.writer.run(record)
    if app.notifier is not None:
        text, blocks = remediation_card(
            incident_id, proposal, approve_later_s=app.config.remediation.approve_later_s
        )
        app.notifier.post_in_thread(incident_id, text, blocks, purpose="remediation")
    return {}


async def await_approval(state: InvestigationState) -> dict[str, Any]:
    decision = interrupt(
        {"incident_id": state["incident_id"], "proposal": _proposal(state).model_dump(mode="json")}
    )
    return {"decision": decision}


async def apply_decision(state: InvestigationState, runtime: GraphRuntime[Deps]) -> dict[str, Any]:
    app = runtime.context.runtime
    incident_id = state["incident_id"]
    decision = state["decision"]
    proposal = _proposal(state)
    actor = str(decision["actor"])
    approved = bool(decision["approve"])
    delay_s = float(decision.get("delay_s", 0))
    kind = EventType.REMEDIATION_APPROVED if approved else EventType.REMEDIATION_REJECTED
    verb = "approved" if approved else "rejected"
    when = f", runs in {delay_s / 60:g} min" if approved and delay_s else ""
    await incidents.write_event(
        app.writer,
        incident_id,
        kind,
        actor,
        f"Remediation {proposal.action} {verb} by {actor}{when}",
        {"action": proposal.action, "delay_s": delay_s},
    )
    if approved and app.remediations is not None:
        await app.remediations.schedule(
            ApprovedRemediation(incident_id, proposal, actor, delay_s, key=state["run_id"])
        )
    if app.notifier is not None:
        app.notifier.post_in_thread(
            incident_id,
            f"Remediation `{proposal.action}` {verb} by {mention(actor)}{when}.",
            purpose="remediation",
        )
    return {}


def _proposal(state: InvestigationState) -> RemediationProposal:
    proposal = Analysis.model_validate(state["analysis"]).remediation
    assert proposal is not None, "routed here only with a proposal"
    return proposal
