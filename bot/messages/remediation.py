"""Remediation in Slack: the proposal with its Approve / Reject buttons (bound to the run and
the proposal shown), the decision that replaces them, and the run's progress (scheduled,
finished, verified) in the thread."""

from __future__ import annotations

import json
from dataclasses import dataclass

from slack_sdk.models.blocks import ActionsBlock, Block

from firebreak.bot.messages.blocks import (
    SECTION_TEXT_MAX,
    bounded,
    button,
    code_safe,
    confirm_dialog,
    context,
    escape,
    fallback,
    mention,
    one_line,
    pack,
    section,
    slack_date,
    who,
)
from firebreak.incidents.notices import (
    RemediationDecided,
    RemediationFinished,
    RemediationScheduled,
    RemediationVerified,
)
from firebreak.incidents.ports import Decision
from firebreak.store.schemas import RemediationProposal
from firebreak.tools.text import duration, truncate

ACTION_REMEDIATION_APPROVE = "remediation_approve"
ACTION_REMEDIATION_REJECT = "remediation_reject"
ACTION_REMEDIATION_APPROVE_LATER = "remediation_approve_later"
REMEDIATION_ACTIONS_BLOCK = "remediation_actions"


@dataclass(frozen=True)
class ApprovalTarget:
    """What an Approve / Reject button decides: the run whose proposal it shows and that
    proposal's digest (`RemediationProposal.digest`). None where a button predates them."""

    incident_id: int
    approval: str | None
    digest: str | None


def remediation_value(incident_id: int, approval: str, proposal: RemediationProposal) -> str:
    """The Approve / Reject buttons' value, binding the click to the proposal shown:
    ``{"incident_id": 7, "approval": "inv-7-…", "digest": "…"}``."""
    value = {"incident_id": incident_id, "approval": approval, "digest": proposal.digest()}
    return json.dumps(value, separators=(",", ":"))


def parse_remediation_value(value: str) -> ApprovalTarget:
    """Inverse of ``remediation_value``; a value without a run or digest (``"7"``, or an older
    ``{"incident_id": 7, "action": …}``) names only its incident. ValueError when malformed."""
    try:
        data = json.loads(value)
    except ValueError:
        data = value.partition(":")[0]
    if not isinstance(data, dict):
        return ApprovalTarget(int(data), None, None)
    approval, digest = data.get("approval"), data.get("digest")
    return ApprovalTarget(
        int(data["incident_id"]),
        approval if isinstance(approval, str) else None,
        digest if isinstance(digest, str) else None,
    )


def remediation_blocks(
    incident_id: int,
    proposal: RemediationProposal,
    *,
    approval: str,
    decision: str | None = None,
    approve_later_s: float | None = None,
) -> list[Block]:
    """The proposal with Approve / Reject buttons (and "Approve, run in N min" when
    ``approve_later_s`` is given); with ``decision`` (e.g. "Approved by <@U1>") the buttons are
    replaced by that line."""
    params = [
        f"`{escape(truncate(p.name, 60))}` = `{escape(truncate(p.value, 200))}`"
        for p in proposal.parameters
    ]
    lines = [
        f":hammer_and_wrench: *Proposed remediation:* `{escape(truncate(proposal.action, 100))}`",
        *params[:15],
    ]
    if len(params) > 15:
        lines.append(f"…and {len(params) - 15} more parameters")
    lines.append(f"_Why:_ {escape(one_line(proposal.reason))}")
    text, _ = pack(lines, SECTION_TEXT_MAX)
    blocks: list[Block] = [section(text)]
    if decision is not None:
        blocks.append(context(decision))
        return blocks
    value = remediation_value(incident_id, approval, proposal)
    blocks.append(
        ActionsBlock(
            block_id=REMEDIATION_ACTIONS_BLOCK,
            elements=[
                button(
                    ":white_check_mark: Approve",
                    ACTION_REMEDIATION_APPROVE,
                    value,
                    style="primary",
                    confirm=confirm_dialog(
                        "Run this action?",
                        f"Run `{escape(truncate(proposal.action, 100))}` for incident "
                        f"#{incident_id}?",
                        "Run it",
                    ),
                ),
                *(
                    [
                        button(
                            f":alarm_clock: Approve, run in {approve_later_s / 60:g} min",
                            ACTION_REMEDIATION_APPROVE_LATER,
                            value,
                        )
                    ]
                    if approve_later_s
                    else []
                ),
                button(":no_entry_sign: Reject", ACTION_REMEDIATION_REJECT, value, style="danger"),
            ],
        )
    )
    blocks.append(context("Runs only after approval; only allowlisted actions can run."))
    return blocks


def remediation_card(
    incident_id: int,
    proposal: RemediationProposal,
    *,
    approval: str,
    decision: str | None = None,
    approve_later_s: float | None = None,
) -> tuple[str, list[Block]]:
    """A remediation proposal as its own thread message: (fallback text, blocks)."""
    state = f" — {decision}" if decision else " — approve or reject"
    text = fallback(f"Proposed remediation for #{incident_id}: {proposal.action}{state}")
    blocks = remediation_blocks(
        incident_id,
        proposal,
        approval=approval,
        decision=decision,
        approve_later_s=approve_later_s,
    )
    return text, bounded(blocks)


SUPERSEDED = (
    ":fast_forward: Superseded by a newer proposal in this thread; this one can no longer run."
)


def remediation_decision_text(notice: RemediationDecided) -> str:
    verb = "Approved" if notice.approved else "Rejected"
    when = f"; runs in {notice.delay_s / 60:g} min" if notice.approved and notice.delay_s else ""
    return f"{verb} by {who(notice.actor)}{when}"


def remediation_scheduled_text(notice: RemediationScheduled) -> str:
    return (
        f":hourglass_flowing_sand: `{escape(notice.action)}` approved by "
        f"{who(notice.approved_by)} will run {slack_date(notice.run_at)} "
        f"(in {duration(notice.delay_s)})."
    )


def remediation_finished_text(notice: RemediationFinished) -> str:
    name = f"`{escape(notice.action)}`"
    if notice.skipped:
        return f":warning: Remediation {name} was not run: {escape(notice.skipped)}."
    verdict = "succeeded :white_check_mark:" if notice.ok else "failed :x:"
    text = f":gear: Remediation {name} {verdict}"
    if notice.output:
        text += f"\n```{code_safe(notice.output)}```"
    verify = notice.verify
    if verify and notice.verify_at:
        text += (
            f"\nVerifying {slack_date(notice.verify_at)}: `{escape(verify['promql'])}` "
            f"{escape(verify['op'])} {verify['threshold']:g}"
        )
    return text


def remediation_verified_text(notice: RemediationVerified) -> str:
    icon = ":white_check_mark:" if notice.ok else ":x:"
    shown = "no data" if notice.value is None else f"{notice.value:g}"
    text = (
        f"{icon} Verification of `{escape(notice.action)}` "
        f"{'passed' if notice.ok else 'failed'}: `{escape(notice.promql)}` is {shown} "
        f"(wanted {escape(notice.op)} {notice.threshold:g})"
    )
    if notice.error:
        text += f" — {escape(truncate(notice.error, 300))}"
    return text


STALE_DECISIONS = {
    "nothing_waiting": "No remediation on incident #{i} is waiting for a decision.",
    "superseded": (
        ":fast_forward: This proposal for incident #{i} was superseded by a newer one, so "
        "nothing was done. Decide on the latest proposal in the thread."
    ),
    "decided": "This proposal for incident #{i} was already decided, so nothing was done.",
    "mismatch": (
        ":warning: This button does not match the proposal waiting on incident #{i}, so "
        "nothing was done. Decide on the latest proposal in the thread."
    ),
}


def decided(decision: Decision, incident_id: int, approvers: list[str]) -> str:
    if decision == "refused":
        allowed = ", ".join(mention(a) for a in approvers[:10])
        return (
            "Sorry, you are not allowed to approve remediations for this bot. "
            f"Please ask one of: {allowed}."
        )
    if decision in STALE_DECISIONS:
        return STALE_DECISIONS[decision].format(i=incident_id)
    verb = "Approved" if decision == "approved" else "Rejected"
    return f"{verb}. The decision is recorded on incident #{incident_id}'s timeline."
