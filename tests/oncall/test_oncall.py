"""Overrides over a rotation, paging targets, handoffs and the `/incident oncall` answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry

from firebreak.bot.messages.escalation import handoff_text, oncall_text, unknown_schedule_text
from firebreak.incidents.notices import HandoffIncident, OnCallHandoff
from firebreak.oncall.answers import oncall_answers
from firebreak.oncall.config import ScheduleConfig
from firebreak.oncall.schedules import OnCall, PageTarget, UnknownSchedule

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN)


def payments(overrides: list[dict] | None = None, **extra: object) -> ScheduleConfig:
    return ScheduleConfig(
        name="payments-primary",
        timezone="Europe/Berlin",
        rotation={
            "users": ["U0ALICE", "U0BOB", "U0CAROL"],
            "start": "2026-11-30T09:00:00",
            "shift_hours": 168,
        },
        overrides=overrides or [],
        **extra,
    )


def make(*schedules: ScheduleConfig) -> OnCall:
    return OnCall(list(schedules), registry=CollectorRegistry())


DAVE = {"user": "U0DAVE", "start": "2026-12-24T00:00:00", "end": "2026-12-27T00:00:00"}


def test_an_override_wins_over_the_rotation_and_splits_its_shift() -> None:
    oncall = make(payments([DAVE]))
    # 21-28 Dec is Alice's week (the fourth shift), Dave holds 24-27 Dec.
    before = oncall.who("payments-primary", berlin("2026-12-23T12:00"))
    assert (before.user, before.reason) == ("U0ALICE", "rotation")
    assert before.until == berlin("2026-12-24T00:00")
    during = oncall.who("payments-primary", berlin("2026-12-25T12:00"))
    assert (during.user, during.reason) == ("U0DAVE", "override")
    assert (during.since, during.until) == (berlin("2026-12-24T00:00"), berlin("2026-12-27T00:00"))
    after = oncall.who("payments-primary", berlin("2026-12-27T00:00"))
    assert (after.user, after.since, after.until) == (
        "U0ALICE",
        berlin("2026-12-27T00:00"),
        berlin("2026-12-28T09:00"),
    )
    upcoming = oncall.next("payments-primary", berlin("2026-12-23T12:00"))
    assert upcoming is not None
    assert (upcoming.user, upcoming.at) == ("U0DAVE", berlin("2026-12-24T00:00"))


def test_of_two_overlapping_overrides_the_later_listed_wins() -> None:
    erin = {"user": "U0ERIN", "start": "2026-12-25T00:00:00", "end": "2026-12-26T00:00:00"}
    oncall = make(payments([DAVE, erin]))
    assert oncall.who("payments-primary", berlin("2026-12-25T12:00")).user == "U0ERIN"
    assert oncall.who("payments-primary", berlin("2026-12-24T12:00")).user == "U0DAVE"
    assert oncall.who("payments-primary", berlin("2026-12-26T12:00")).user == "U0DAVE"
    swapped = make(payments([erin, DAVE]))
    assert swapped.who("payments-primary", berlin("2026-12-25T12:00")).user == "U0DAVE"


def test_an_override_for_the_person_on_call_does_not_end_their_shift() -> None:
    alice = {"user": "U0ALICE", "start": "2026-12-22T00:00:00", "end": "2026-12-23T00:00:00"}
    oncall = make(payments([alice]))
    shift = oncall.who("payments-primary", berlin("2026-12-22T12:00"))
    assert (shift.user, shift.reason) == ("U0ALICE", "override")
    assert (shift.since, shift.until) == (berlin("2026-12-21T09:00"), berlin("2026-12-28T09:00"))


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        make(payments()).who("payments-primary", datetime(2026, 12, 1, 12))


def test_resolve_targets_pages_whoever_is_on_call_when_the_step_fires() -> None:
    oncall = make(payments([DAVE]))
    notify = ["schedule:payments-primary", "S0SRELEADS", "U0ALICE"]
    first = oncall.resolve_targets(notify, berlin("2026-12-23T12:00"))
    assert first == [
        PageTarget("U0ALICE", "on call for payments-primary", "payments-primary"),
        PageTarget("S0SRELEADS"),
    ]  # Alice is paged once
    later = oncall.resolve_targets(notify, berlin("2026-12-24T00:00"))  # the handoff
    assert [page.target for page in later] == ["U0DAVE", "S0SRELEADS", "U0ALICE"]


def test_a_schedule_with_nobody_on_call_says_so_instead_of_paging() -> None:
    oncall = make(payments())
    (page,) = oncall.resolve_targets(["schedule:payments-primary"], berlin("2026-11-01T00:00"))
    assert page == PageTarget(None, "nobody is on call for payments-primary", "payments-primary")


def test_handoffs_between_lists_each_shift_change_once() -> None:
    oncall = make(payments([DAVE], notify_handoff=True))
    assert oncall.handoff_schedules() == ["payments-primary"]
    t0, t1, t2 = berlin("2026-12-20T00:00"), berlin("2026-12-24T00:00"), berlin("2026-12-31T00:00")
    first = oncall.handoffs_between("payments-primary", t0, t1)  # (t0, t1]: t1 itself included
    second = oncall.handoffs_between("payments-primary", t1, t2)
    assert [(s.user, s.since) for s in first] == [
        ("U0ALICE", berlin("2026-12-21T09:00")),
        ("U0DAVE", berlin("2026-12-24T00:00")),
    ]
    assert [(s.user, s.since) for s in second] == [
        ("U0ALICE", berlin("2026-12-27T00:00")),
        ("U0BOB", berlin("2026-12-28T09:00")),
    ]
    assert first[1].until == berlin("2026-12-27T00:00")
    assert oncall.handoffs_between("payments-primary", t1, t1 + timedelta(hours=1)) == []


def test_unknown_schedule_names_the_ones_there_are() -> None:
    oncall = make(payments())
    with pytest.raises(UnknownSchedule) as caught:
        oncall.who("payments", datetime.now(UTC))
    assert str(caught.value) == "no schedule 'payments' (schedules: payments-primary)"
    assert unknown_schedule_text(caught.value).startswith(":warning: no schedule 'payments'")


def test_oncall_answer_says_who_until_when_and_who_next() -> None:
    sre = ScheduleConfig(
        name="sre",
        rotation={"users": ["U0ERIN"], "start": "2027-01-04T09:00:00", "shift_hours": 24},
    )
    oncall = make(payments([DAVE]), sre)
    at = berlin("2026-12-25T12:00")
    answers = oncall_answers(oncall, None, at)
    assert [a.schedule for a in answers] == ["payments-primary", "sre"]
    assert answers[0].on_call.user == "U0DAVE" and answers[0].next is not None
    assert answers[0].next.user == "U0ALICE"
    assert answers[1].on_call.user is None and answers[1].next is not None
    text = oncall_text(answers)
    dave_until = int(berlin("2026-12-27T00:00").timestamp())
    alice_from = int(berlin("2026-12-27T00:00").timestamp())
    assert f"*payments-primary*: <@U0DAVE> is on call (override) until <!date^{dave_until}^" in text
    assert f"next: <@U0ALICE> from <!date^{alice_from}^" in text
    assert "*sre*: _nobody_ is on call until" in text
    assert [a.schedule for a in oncall_answers(oncall, "sre", at)] == ["sre"]
    with pytest.raises(UnknownSchedule):
        oncall_answers(oncall, "nope", at)
    assert oncall_text([]) == "No on-call schedules are configured."


def test_handoff_dm_lists_the_open_incidents() -> None:
    oncall = make(payments([DAVE]))
    shift = oncall.who("payments-primary", berlin("2026-12-25T12:00"))
    notice = OnCallHandoff(
        schedule=shift.schedule,
        until=shift.until,
        incidents=[HandoffIncident(id=12, title="Checkout <errors>", status="triggered")],
    )
    text = handoff_text(notice)
    assert text.startswith(":wave: You are now on call for *payments-primary* until <!date^")
    assert "• #12 Checkout &lt;errors&gt; (triggered)" in text
    assert "No open incidents" in handoff_text(notice.model_copy(update={"incidents": []}))
