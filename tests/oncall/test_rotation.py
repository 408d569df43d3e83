"""Rotation arithmetic in Europe/Berlin across both clock changes of 2026 (29 March, 25 October).

Shifts are counted on the wall clock: handovers keep their local time, so the shift that
contains a change is an hour shorter (spring) or longer (autumn) in real time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry

from firebreak.oncall.config import Rotation, ScheduleConfig
from firebreak.oncall.rotation import rotation_segments
from firebreak.oncall.schedules import OnCall

BERLIN = ZoneInfo("Europe/Berlin")
USERS = ["U0ALICE", "U0BOB", "U0CAROL"]


def berlin(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN)


def oncall(start: str, shift_hours: float, users: list[str] = USERS) -> OnCall:
    schedule = ScheduleConfig(
        name="s",
        timezone="Europe/Berlin",
        rotation={"users": users, "start": start, "shift_hours": shift_hours},
    )
    return OnCall([schedule], registry=CollectorRegistry())


def wall(at: datetime | None) -> str:
    assert at is not None
    return at.astimezone(BERLIN).strftime("%Y-%m-%d %H:%M %Z")


class Shift(NamedTuple):
    """A shift as people read it: on the Berlin wall clock, and its length in real time."""

    user: str | None
    since: str
    until: str
    length: timedelta


def shift(schedule: OnCall, at: str) -> Shift:
    """The shift of schedule `s` that holds Berlin wall time `at`."""
    found = schedule.who("s", berlin(at))
    assert found.since is not None and found.until is not None
    length = found.until - found.since
    return Shift(found.user, wall(found.since), wall(found.until), length)


def test_daily_shift_hands_over_at_nine_across_the_spring_change() -> None:
    schedule = oncall("2026-03-27T09:00:00", 24)
    held = shift(schedule, "2026-03-28T12:00")  # the shift that holds the change
    assert held.user == "U0BOB"
    assert (held.since, held.until) == ("2026-03-28 09:00 CET", "2026-03-29 09:00 CEST")
    assert held.length == timedelta(hours=23)
    after = shift(schedule, "2026-03-29T09:00")
    assert (after.user, after.since, after.until) == (
        "U0CAROL",
        "2026-03-29 09:00 CEST",
        "2026-03-30 09:00 CEST",
    )
    assert schedule.who("s", berlin("2026-03-29T08:59")).user == "U0BOB"


def test_daily_shift_hands_over_at_nine_across_the_autumn_change() -> None:
    schedule = oncall("2026-10-23T09:00:00", 24)
    held = shift(schedule, "2026-10-24T23:00")
    assert (held.since, held.until) == ("2026-10-24 09:00 CEST", "2026-10-25 09:00 CET")
    assert held.length == timedelta(hours=25)
    assert schedule.who("s", berlin("2026-10-25T09:00")).user == "U0CAROL"


def test_weekly_shift_keeps_monday_nine_and_is_an_hour_short_in_march() -> None:
    schedule = oncall("2026-03-16T09:00:00", 168)  # Mondays
    held = shift(schedule, "2026-03-29T03:30")  # just after the change
    assert held.user == "U0BOB"
    assert (held.since, held.until) == ("2026-03-23 09:00 CET", "2026-03-30 09:00 CEST")
    assert held.length == timedelta(hours=167)
    upcoming = schedule.next("s", berlin("2026-03-29T03:30"))
    assert upcoming is not None
    assert (upcoming.user, wall(upcoming.at)) == ("U0CAROL", "2026-03-30 09:00 CEST")
    october = shift(schedule, "2026-10-25T12:00")
    assert (october.since, october.until) == ("2026-10-19 09:00 CEST", "2026-10-26 09:00 CET")
    assert october.length == timedelta(hours=169)


def test_twelve_hour_shifts_keep_nine_and_twentyone_and_the_night_absorbs_the_change() -> None:
    schedule = oncall("2026-03-28T09:00:00", 12, ["U0DAY", "U0NIGHT"])
    night = shift(schedule, "2026-03-29T01:30")
    assert night.user == "U0NIGHT"
    assert (night.since, night.until) == ("2026-03-28 21:00 CET", "2026-03-29 09:00 CEST")
    assert night.length == timedelta(hours=11)
    day = shift(schedule, "2026-03-29T12:00")
    assert (day.user, day.since, day.until) == (
        "U0DAY",
        "2026-03-29 09:00 CEST",
        "2026-03-29 21:00 CEST",
    )
    autumn = shift(oncall("2026-10-24T09:00:00", 12, ["U0DAY", "U0NIGHT"]), "2026-10-25T05:00")
    assert autumn.user == "U0NIGHT"
    assert autumn.length == timedelta(hours=13)


def test_a_handover_the_spring_change_skips_happens_an_hour_later() -> None:
    schedule = oncall("2026-03-27T02:30:00", 24)
    shift = schedule.who("s", berlin("2026-03-29T01:00"))
    assert wall(shift.until) == "2026-03-29 03:30 CEST"
    assert schedule.who("s", berlin("2026-03-29T03:29")).user == shift.user
    assert wall(schedule.who("s", berlin("2026-03-30T12:00")).since) == "2026-03-30 02:30 CEST"


def test_a_handover_in_the_repeated_autumn_hour_happens_at_its_first_occurrence() -> None:
    schedule = oncall("2026-10-23T02:30:00", 24)
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    before = schedule.who("s", first - timedelta(seconds=1))
    after = schedule.who("s", first)
    assert after.user != before.user
    assert after.since == first and after.since.tzinfo is UTC
    again = datetime(2026, 10, 25, 1, 10, tzinfo=UTC)  # 02:10 the second time (CET)
    assert schedule.who("s", again).user == after.user  # the clock going back changes nobody


def test_users_take_turns_in_order_and_nobody_is_on_call_before_the_start() -> None:
    schedule = oncall("2026-11-30T09:00:00", 168)
    days = [berlin("2026-11-30T09:00") + timedelta(days=7 * k) for k in range(7)]
    assert [schedule.who("s", at).user for at in days] == USERS * 2 + ["U0ALICE"]
    before = schedule.who("s", berlin("2026-11-30T08:00"))
    assert before.user is None and before.reason == "nobody"
    assert wall(before.until) == "2026-11-30 09:00 CET"
    assert before.since is None  # nobody, for as long as anyone looked back
    upcoming = schedule.next("s", berlin("2026-11-01T00:00"))
    assert upcoming is not None and upcoming.user == "U0ALICE"


def test_a_single_person_rotation_has_no_handover_in_sight() -> None:
    schedule = oncall("2026-01-05T09:00:00", 24, ["U0SOLO"])
    shift = schedule.who("s", berlin("2026-06-01T12:00"))
    assert (shift.user, shift.until) == ("U0SOLO", None)
    assert schedule.next("s", berlin("2026-06-01T12:00")) is None


def test_the_answer_is_the_same_whatever_the_timezone_of_the_question() -> None:
    schedule = oncall("2026-03-27T09:00:00", 24)
    at = berlin("2026-03-29T08:59")
    in_utc = schedule.who("s", at.astimezone(UTC))
    in_tokyo = schedule.who("s", at.astimezone(ZoneInfo("Asia/Tokyo")))
    assert in_utc == in_tokyo == schedule.who("s", at)


def test_rotation_segments_see_a_shift_that_begins_in_the_repeated_hour() -> None:
    rotation = Rotation(users=USERS, start=datetime(2026, 10, 23, 2, 30), shift_hours=24)
    t0 = datetime(2026, 10, 25, 0, 0, tzinfo=UTC)
    t1 = datetime(2026, 10, 25, 1, 10, tzinfo=UTC)  # 02:10 CET, on the wall before 02:30
    starts = [seg.start for seg in rotation_segments(rotation, BERLIN, t0, t1)]
    assert starts[-1] == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
