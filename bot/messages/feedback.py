"""The RCA reply's "Was this right?" control (Correct / Wrong, and the Wrong button's form),
the verdict it shows once given, and what the person who judged is answered."""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    InputBlock,
    PlainTextInputElement,
    PlainTextObject,
)
from slack_sdk.models.views import View

from firebreak.bot.messages.blocks import SUMMARY_MAX, button, escape, one_line, section, who
from firebreak.bot.messages.replies import Reply
from firebreak.incidents.feedback import MAX_CAUSE, FeedbackResult, Recorded
from firebreak.store.schemas import Analysis, ExecutionStatus, Feedback, Verdict
from firebreak.tools.text import truncate

ACTION_FEEDBACK_CORRECT = "rca_feedback_correct"
ACTION_FEEDBACK_WRONG = "rca_feedback_wrong"
VIEW_ACTUAL_CAUSE = "rca_actual_cause"  # the Wrong button's modal (callback_id)
CAUSE_BLOCK = "actual_cause"
CAUSE_INPUT = "text"
FEEDBACK_ACTIONS_BLOCK = "rca_feedback"


def feedback_value(incident_id: int, run_id: str) -> str:
    """The Correct / Wrong buttons' value (and the modal's metadata): the incident and the
    run whose analysis they judge, so a click on an older reply is recognised as such."""
    return json.dumps({"incident_id": incident_id, "run_id": run_id}, separators=(",", ":"))


def parse_feedback_value(value: str) -> tuple[int, str]:
    """Inverse of ``feedback_value``; ValueError for anything else."""
    try:
        data = json.loads(value)
        incident_id, run_id = data["incident_id"], data["run_id"]
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"not a feedback value: {value[:40]!r}") from exc
    if not isinstance(incident_id, int) or not isinstance(run_id, str) or not run_id:
        raise ValueError(f"not a feedback value: {value[:40]!r}")
    return incident_id, run_id


def verdict_line(feedback: Feedback) -> str:
    """ "✅ Confirmed by <@U…>" or "❌ Marked wrong by <@U…>. Actual cause: …"."""
    if feedback.verdict is Verdict.CORRECT:
        return f":white_check_mark: Confirmed by {who(feedback.by)}"
    cause = escape(truncate(one_line(feedback.actual_cause or ""), SUMMARY_MAX))
    return f":x: Marked wrong by {who(feedback.by)}. Actual cause: _{cause}_"


def feedback_blocks(incident_id: int, analysis: Analysis) -> list[Block]:
    """ "Was this right?" with Correct / Wrong, or the verdict given (the buttons stay, so a
    verdict can be changed). None for an analysis with no run (no reply to judge it from) or
    one that failed (nothing to judge)."""
    if analysis.run_id is None or analysis.execution_status == ExecutionStatus.FAILED:
        return []
    said = analysis.feedback
    value = feedback_value(incident_id, analysis.run_id)
    return [
        section(verdict_line(said) if said else ":thinking_face: *Was this right?*"),
        ActionsBlock(
            block_id=FEEDBACK_ACTIONS_BLOCK,
            elements=[
                button(":white_check_mark: Correct", ACTION_FEEDBACK_CORRECT, value),
                button(":x: Wrong", ACTION_FEEDBACK_WRONG, value),
            ],
        ),
    ]


def actual_cause_modal(incident_id: int, run_id: str, root_cause: str) -> View:
    """The Wrong button's form: what the analysis said, and "What was the actual cause?"."""
    said = escape(truncate(one_line(root_cause), SUMMARY_MAX))
    return View(
        type="modal",
        callback_id=VIEW_ACTUAL_CAUSE,
        private_metadata=feedback_value(incident_id, run_id),
        title=PlainTextObject(text="Was this right?"),
        submit=PlainTextObject(text="Record"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            section(f"Incident #{incident_id}: the analysis said _{said}_"),
            InputBlock(
                block_id=CAUSE_BLOCK,
                label=PlainTextObject(text="What was the actual cause?"),
                element=PlainTextInputElement(
                    action_id=CAUSE_INPUT, multiline=True, max_length=MAX_CAUSE
                ),
            ),
        ],
    )


def submitted_cause(view: dict[str, Any]) -> str:
    """The text typed into ``actual_cause_modal`` (a ``view_submission``'s ``view``), stripped."""
    values = ((view.get("state") or {}).get("values") or {}).get(CAUSE_BLOCK) or {}
    return str((values.get(CAUSE_INPUT) or {}).get("value") or "").strip()


REFUSED_FEEDBACK = {
    FeedbackResult.MISSING: "There is no incident #{i}.",
    FeedbackResult.NO_ANALYSIS: "Incident #{i} has no analysis to judge yet.",
    FeedbackResult.SUPERSEDED: (
        "This analysis of incident #{i} was replaced by a newer one, so nothing was recorded. "
        "Judge the latest analysis in the thread."
    ),
}


def feedback_refused(result: FeedbackResult, incident_id: int) -> str | None:
    """Why a verdict was not taken, in plain words (a modal's field error takes no markup);
    None when it was taken."""
    text = REFUSED_FEEDBACK.get(result)
    return text.format(i=incident_id) if text else None


def feedback_given(done: Recorded, incident_id: int) -> Reply:
    """The answer to Correct (or a submitted Wrong): silence when recorded, the reply itself
    shows the verdict to everyone; otherwise why nothing changed."""
    refused = feedback_refused(done.result, incident_id)
    if refused is not None:
        return Reply(
            f":warning: {refused}",
            changed=False,
            missing=done.result is FeedbackResult.MISSING,
        )
    if done.result is FeedbackResult.UNCHANGED:
        return Reply(
            f"You already said that about the analysis of incident #{incident_id}.", changed=False
        )
    return Reply(f"Recorded your verdict on the analysis of incident #{incident_id}. Thank you.")
