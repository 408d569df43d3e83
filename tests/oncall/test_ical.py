"""iCal schedules: RRULE and EXDATE expanded by the library, e-mails resolved through Slack's
`users.lookupByEmail` (the Slack-compatible fake) and cached, a URL re-read when due with the
last good copy kept when a read fails."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import structlog
from prometheus_client import CollectorRegistry

from firebreak.oncall.config import ScheduleConfig
from firebreak.oncall.schedules import OnCall
from firebreak.oncall.slack_lookup import slack_email_lookup
from tests.fakes.slack_api import FakeSlackApi
from tests.oncall.conftest import CalendarServer

BERLIN = ZoneInfo("Europe/Berlin")

# Alice every other week from Mon 30 Nov, Bob (by e-mail) the weeks between, but not the week
# of 21 Dec (EXDATE); someone unknown to Slack on 4 Jan; one cancelled event.
SRE_ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//firebreak tests//EN
BEGIN:VEVENT
UID:alice@firebreak.test
DTSTAMP:20261101T000000Z
DTSTART;TZID=Europe/Berlin:20261130T090000
DTEND;TZID=Europe/Berlin:20261207T090000
RRULE:FREQ=WEEKLY;INTERVAL=2;COUNT=3
SUMMARY:U0ALICE
END:VEVENT
BEGIN:VEVENT
UID:bob@firebreak.test
DTSTAMP:20261101T000000Z
DTSTART;TZID=Europe/Berlin:20261207T090000
DTEND;TZID=Europe/Berlin:20261214T090000
RRULE:FREQ=WEEKLY;INTERVAL=2;COUNT=2
EXDATE;TZID=Europe/Berlin:20261221T090000
SUMMARY:On call: Bob@Example.com
END:VEVENT
BEGIN:VEVENT
UID:ghost@firebreak.test
DTSTAMP:20261101T000000Z
DTSTART;TZID=Europe/Berlin:20270104T090000
DTEND;TZID=Europe/Berlin:20270111T090000
SUMMARY:ghost@example.com
END:VEVENT
BEGIN:VEVENT
UID:cancelled@firebreak.test
DTSTAMP:20261101T000000Z
DTSTART;TZID=Europe/Berlin:20270111T090000
DTEND;TZID=Europe/Berlin:20270118T090000
STATUS:CANCELLED
SUMMARY:U0CAROL
END:VEVENT
END:VCALENDAR
"""

CAROL_ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//firebreak tests//EN
BEGIN:VEVENT
UID:carol@firebreak.test
DTSTAMP:20261101T000000Z
DTSTART:20261130T000000
DTEND:20261231T000000
SUMMARY:U0CAROL
END:VEVENT
BEGIN:VEVENT
UID:dan@firebreak.test
DTSTAMP:20261101T000000Z
DTSTART;VALUE=DATE:20261224
DTEND;VALUE=DATE:20261227
SUMMARY:U0DAN
END:VEVENT
END:VCALENDAR
"""


def berlin(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN)


def sre(ical: str, **extra: object) -> ScheduleConfig:
    return ScheduleConfig(name="sre", timezone="Europe/Berlin", ical=ical, **extra)


def failures(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value(
        "firebreak_schedule_refresh_failures_total", {"schedule": "sre"}
    )


async def test_rrule_and_exdate_from_a_file_and_emails_resolved_once(tmp_path: Path) -> None:
    path = tmp_path / "sre.ics"
    path.write_text(SRE_ICS)
    with FakeSlackApi() as slack:
        slack.add_user("U0BOB", "bob")  # profile e-mail bob@example.com
        client = slack.client()
        oncall = OnCall(
            [sre(str(path))], registry=CollectorRegistry(), lookup_email=slack_email_lookup(client)
        )
        await oncall.refresh(force=True)
        alice = oncall.who("sre", berlin("2026-12-16T12:00"))  # the second occurrence
        assert (alice.user, alice.reason) == ("U0ALICE", "ical")
        assert (alice.since, alice.until) == (
            berlin("2026-12-14T09:00"),
            berlin("2026-12-21T09:00"),
        )
        bob = oncall.who("sre", berlin("2026-12-08T12:00"))
        assert (bob.user, bob.since) == ("U0BOB", berlin("2026-12-07T09:00"))
        excluded = oncall.who("sre", berlin("2026-12-22T12:00"))  # Bob's week removed by EXDATE
        assert (excluded.user, excluded.since, excluded.until) == (
            None,
            berlin("2026-12-21T09:00"),
            berlin("2026-12-28T09:00"),
        )
        assert oncall.who("sre", berlin("2027-01-05T12:00")).user is None  # unknown e-mail
        assert oncall.who("sre", berlin("2027-01-12T12:00")).user is None  # cancelled
        upcoming = oncall.next("sre", berlin("2026-12-22T12:00"))
        assert upcoming is not None and upcoming.user == "U0ALICE"

        lookups = [c.params["email"] for c in slack.calls("users.lookupByEmail")]
        assert sorted(lookups) == ["bob@example.com", "ghost@example.com"]
        await oncall.refresh(force=True)  # read again: Bob is cached, the unknown asked again
        lookups = [c.params["email"] for c in slack.calls("users.lookupByEmail")]
        assert sorted(lookups) == ["bob@example.com", "ghost@example.com", "ghost@example.com"]
        assert oncall.who("sre", berlin("2026-12-08T12:00")).user == "U0BOB"
        await oncall.aclose()


async def test_floating_times_and_all_day_events_are_read_in_the_schedule_timezone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "carol.ics"
    path.write_text(CAROL_ICS)
    overrides = [{"user": "U0ERIN", "start": "2026-12-01T00:00:00", "end": "2026-12-02T00:00:00"}]
    oncall = OnCall([sre(str(path), overrides=overrides)], registry=CollectorRegistry())
    await oncall.refresh(force=True)
    carol = oncall.who("sre", berlin("2026-11-30T00:30"))
    assert (carol.user, carol.since) == ("U0CAROL", berlin("2026-11-30T00:00"))
    dan = oncall.who("sre", berlin("2026-12-25T12:00"))  # the later event wins the overlap
    assert (dan.user, dan.since, dan.until) == (
        "U0DAN",
        berlin("2026-12-24T00:00"),
        berlin("2026-12-27T00:00"),
    )
    erin = oncall.who("sre", berlin("2026-12-01T12:00"))  # an override wins over the calendar
    assert (erin.user, erin.reason) == ("U0ERIN", "override")
    await oncall.aclose()


async def test_a_url_is_read_again_when_due_and_a_failed_read_keeps_the_last_good_copy(
    calendar_server: CalendarServer,
) -> None:
    calendar_server.body = CAROL_ICS.encode()
    registry, clock = CollectorRegistry(), [1000.0]
    oncall = OnCall(
        [sre(calendar_server.url, ical_refresh_s=300)],
        registry=registry,
        monotonic=lambda: clock[0],
    )
    at = berlin("2026-12-10T12:00")
    await oncall.refresh(force=True)
    assert oncall.who("sre", at).user == "U0CAROL"
    assert (calendar_server.requests, failures(registry)) == (1, 0)

    calendar_server.body = SRE_ICS.encode()
    clock[0] += 299
    await oncall.refresh()  # not due yet: nothing is fetched
    assert calendar_server.requests == 1 and oncall.who("sre", at).user == "U0CAROL"

    calendar_server.status = 503
    clock[0] += 1
    with structlog.testing.capture_logs() as logs:
        await oncall.refresh()
    assert calendar_server.requests == 2
    assert oncall.who("sre", at).user == "U0CAROL"  # the last good copy
    assert failures(registry) == 1
    (warning,) = [entry for entry in logs if entry["event"] == "schedule read failed"]
    assert warning["error"].endswith("answered HTTP 503") and warning["kept_last_good"] is True
    assert "s3cr3t-token" not in repr(logs)  # export links carry a private token

    calendar_server.status, calendar_server.body = 200, b"<html>sign in</html>"
    clock[0] += 300
    await oncall.refresh()
    assert oncall.who("sre", at).user == "U0CAROL" and failures(registry) == 2

    calendar_server.body = SRE_ICS.encode()
    clock[0] += 300
    await oncall.refresh()
    assert oncall.who("sre", at).user is None  # 7-14 Dec is Bob's, and no lookup is given
    assert oncall.who("sre", berlin("2026-12-01T12:00")).user == "U0ALICE"
    assert failures(registry) == 2
    await oncall.aclose()


async def test_a_url_down_at_start_leaves_nobody_on_call_and_counts_it() -> None:
    registry = CollectorRegistry()
    oncall = OnCall([sre("http://127.0.0.1:9/sre.ics")], registry=registry)
    assert failures(registry) == 0  # the series exists before the first failure
    await oncall.refresh(force=True)
    assert oncall.who("sre", berlin("2026-12-10T12:00")).user is None
    assert failures(registry) == 1
    assert oncall.refresh_interval_s == 300
    await oncall.aclose()


async def test_a_failing_slack_lookup_is_tried_again_on_the_next_read(tmp_path: Path) -> None:
    path = tmp_path / "sre.ics"
    path.write_text(SRE_ICS)
    with FakeSlackApi() as slack:
        slack.add_user("U0BOB", "bob")
        slack.api_error("users.lookupByEmail", "missing_scope", times=2)
        oncall = OnCall(
            [sre(str(path))],
            registry=CollectorRegistry(),
            lookup_email=slack_email_lookup(slack.client()),
        )
        await oncall.refresh(force=True)
        assert oncall.who("sre", berlin("2026-12-08T12:00")).user is None
        await oncall.refresh(force=True)
        assert oncall.who("sre", berlin("2026-12-08T12:00")).user == "U0BOB"
        await oncall.aclose()


@pytest.mark.parametrize("summary", ["U0ALICE", " U0ALICE "])
def test_summary_names_a_user_id(summary: str) -> None:
    from firebreak.oncall.ical import summary_target

    assert summary_target(summary) == "U0ALICE"
    assert summary_target("URGENT shift") is None
    assert summary_target("Primary - Alice.Smith@Example.com") == "alice.smith@example.com"
