"""The Slack side of verdicts, built by slack-sdk (so Block Kit limits are checked): the RCA
reply's "Was this right?", the verdict it shows once given, the card's line, the form asking
for the actual cause, and "Seen before" marking confirmed and corrected causes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from firebreak.bot.messages.feedback import (
    ACTION_FEEDBACK_CORRECT,
    ACTION_FEEDBACK_WRONG,
    CAUSE_BLOCK,
    CAUSE_INPUT,
    FEEDBACK_ACTIONS_BLOCK,
    VIEW_ACTUAL_CAUSE,
    actual_cause_modal,
    parse_feedback_value,
    submitted_cause,
)
from firebreak.bot.messages.incident import incident_card
from firebreak.bot.messages.rca import rca_card, seen_before_line
from firebreak.incidents.feedback import MAX_CAUSE
from firebreak.store.schemas import ExecutionStatus, Feedback, HistoryRef, Verdict
from tests.bot.messages.builders import (
    T0,
    all_text,
    blocks_json,
    buttons,
    make_analysis,
    make_incident,
)
from tests.fakes.slack_api import block_errors

RUN = "inv-7-0123456789ab"
CONFIRMED = Feedback(verdict=Verdict.CORRECT, by="U0ALICE", at=T0)
CORRECTED = Feedback(
    verdict=Verdict.WRONG, actual_cause="A <!channel> cron & disk\nfull", by="bob", at=T0
)


def test_the_reply_asks_was_this_right_with_the_run_in_the_buttons() -> None:
    data = blocks_json(rca_card(make_incident(), make_analysis(run_id=RUN))[1])
    found = buttons(data)
    assert set(found) == {ACTION_FEEDBACK_CORRECT, ACTION_FEEDBACK_WRONG}
    for button in found.values():
        assert parse_feedback_value(button["value"]) == (7, RUN)
    assert data[-1]["block_id"] == FEEDBACK_ACTIONS_BLOCK  # the last word
    assert "Was this right?" in data[-2]["text"]["text"]


@pytest.mark.parametrize(
    "changes",
    [{}, {"run_id": RUN, "execution_status": ExecutionStatus.FAILED}],
    ids=["no run", "failed"],
)
def test_no_control_without_a_run_or_for_a_failed_analysis(changes: dict[str, object]) -> None:
    data = blocks_json(rca_card(make_incident(), make_analysis(**changes))[1])
    assert not buttons(data) and "Was this right?" not in all_text(data)


def test_the_reply_shows_the_verdict_and_keeps_the_buttons() -> None:
    confirmed = blocks_json(
        rca_card(make_incident(), make_analysis(run_id=RUN, feedback=CONFIRMED))[1]
    )
    assert confirmed[-2]["text"]["text"] == ":white_check_mark: Confirmed by <@U0ALICE>"
    assert "Was this right?" not in all_text(confirmed)
    assert set(buttons(confirmed)) == {ACTION_FEEDBACK_CORRECT, ACTION_FEEDBACK_WRONG}
    corrected = blocks_json(
        rca_card(make_incident(), make_analysis(run_id=RUN, feedback=CORRECTED))[1]
    )
    assert corrected[-2]["text"]["text"] == (
        ":x: Marked wrong by bob. Actual cause: _A &lt;!channel&gt; cron &amp; disk full_"
    )


def test_the_card_says_the_verdict_under_the_root_cause() -> None:
    analysis = make_analysis(run_id=RUN, feedback=CORRECTED)
    data = blocks_json(incident_card(make_incident(analysis=analysis))[1])
    [cause] = [b["text"]["text"] for b in data if "Root cause" in b.get("text", {}).get("text", "")]
    assert cause.endswith(
        "Marked wrong by bob. Actual cause: _A &lt;!channel&gt; cron &amp; disk full_"
    )
    plain = blocks_json(incident_card(make_incident(analysis=make_analysis()))[1])
    assert "Confirmed" not in all_text(plain) and "Marked wrong" not in all_text(plain)


def test_the_form_asks_for_the_actual_cause() -> None:
    view = actual_cause_modal(7, RUN, "Pool <exhausted> " + "x" * 5000).to_dict()
    assert view["type"] == "modal" and view["callback_id"] == VIEW_ACTUAL_CAUSE
    assert parse_feedback_value(view["private_metadata"]) == (7, RUN)
    assert block_errors(view["blocks"], limit=100) == []
    said, field = view["blocks"]
    assert "Pool &lt;exhausted&gt;" in said["text"]["text"] and said["text"]["text"].endswith("…_")
    assert field["block_id"] == CAUSE_BLOCK
    assert field["label"]["text"] == "What was the actual cause?"
    assert field["element"]["action_id"] == CAUSE_INPUT
    assert field["element"]["max_length"] == MAX_CAUSE and field["element"]["multiline"]
    submitted = {"state": {"values": {CAUSE_BLOCK: {CAUSE_INPUT: {"value": " x \n"}}}}}
    assert submitted_cause(submitted) == "x"
    assert submitted_cause({}) == ""


@pytest.mark.parametrize(
    "value", ["7", "", "{}", '{"incident_id": "7", "run_id": "r"}', '{"incident_id": 7}', "[7]"]
)
def test_other_values_are_not_feedback(value: str) -> None:
    with pytest.raises(ValueError):
        parse_feedback_value(value)


def test_seen_before_marks_what_people_said() -> None:
    created = T0 - timedelta(days=3)
    base = HistoryRef(
        ref="H1", incident_id=12, title="t", created_at=created, root_cause="Disk full"
    )
    lines = [
        seen_before_line(base.model_copy(update={"confirmed": c}), None, T0)
        for c in (None, True, False)
    ]
    assert lines == [
        "#12, 3 days ago — _Disk full_",
        "#12, 3 days ago — _Disk full_ (confirmed)",
        "#12, 3 days ago — _Disk full_ (corrected by a person)",
    ]
