"""Remediation proposals: the buttons carry the run and the proposal shown."""

from __future__ import annotations

from firebreak.bot.messages.rca import rca_card
from firebreak.bot.messages.remediation import (
    ACTION_REMEDIATION_APPROVE,
    ACTION_REMEDIATION_REJECT,
    ApprovalTarget,
    parse_remediation_value,
    remediation_card,
)
from firebreak.store.schemas import (
    RemediationParameter,
    RemediationProposal,
)
from tests.bot.messages.builders import (
    all_text,
    blocks_json,
    buttons,
    make_analysis,
    make_incident,
)


def test_remediation_buttons_carry_the_run_and_the_proposal_shown():
    analysis = make_analysis(
        remediation=RemediationProposal(
            action="rollback_deploy",
            parameters=[RemediationParameter(name="deployment", value="checkout")],
            reason="The deploy correlates with the first errors.",
        )
    )
    proposal = analysis.remediation
    assert proposal is not None
    assert not buttons(blocks_json(rca_card(make_incident(), analysis)[1]))
    data = blocks_json(remediation_card(7, proposal, approval="inv-7-abc")[1])
    found = buttons(data)
    assert set(found) == {ACTION_REMEDIATION_APPROVE, ACTION_REMEDIATION_REJECT}
    for button in found.values():
        target = parse_remediation_value(button["value"])
        assert target == ApprovalTarget(7, "inv-7-abc", proposal.digest())
    assert "deployment" in all_text(data)

    _, decided = remediation_card(
        7, proposal, approval="inv-7-abc", decision="Approved by <@U0BOB>"
    )
    decided_data = blocks_json(decided)
    assert not buttons(decided_data)
    assert "Approved by <@U0BOB>" in all_text(decided_data)
    assert parse_remediation_value("7:restart") == ApprovalTarget(7, None, None)


def test_a_proposal_digest_names_its_action_and_parameters_only():
    def proposal(value: str, reason: str = "r") -> RemediationProposal:
        return RemediationProposal(
            action="restart",
            parameters=[RemediationParameter(name="service", value=value)],
            reason=reason,
        )

    assert proposal("checkout").digest() == proposal("checkout", "other words").digest()
    assert proposal("checkout").digest() != proposal("payments").digest()
