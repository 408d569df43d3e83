"""iCal calendars as a schedule's base layer (PagerDuty, Opsgenie, Grafana OnCall exports).

Recurrences are expanded by `recurring-ical-events` (RRULE, RDATE, EXDATE, moved instances),
never by hand. An event's SUMMARY names who is on call: a Slack user id (`U…`, the whole
summary) or an e-mail address anywhere in it, which the caller resolves to a user id (see
`emails`). Floating times and all-day dates are read in the schedule's timezone. Where two
events overlap, the one that starts later wins; cancelled events and events whose summary
names nobody leave no one on call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import icalendar
import recurring_ical_events

from firebreak.oncall.timeline import Segment, local_instant

__all__ = [
    "Calendar",
    "IcalError",
    "display_location",
    "fetch_calendar",
    "parse_calendar",
    "summary_target",
]

MAX_BYTES = 16 * 1024 * 1024
QUERY_PAD = timedelta(days=1)  # wider than any UTC offset; painting clips to the window
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


class IcalError(Exception):
    """A calendar could not be fetched or parsed; the message says why, for people."""


@dataclass(frozen=True)
class Calendar:
    """One good copy of a calendar, ready to expand."""

    query: recurring_ical_events.CalendarQuery
    summaries: frozenset[str]

    def emails(self) -> set[str]:
        """The e-mail addresses its summaries name (lower case)."""
        found = set()
        for summary in self.summaries:
            target = summary_target(summary)
            if target is not None and "@" in target:
                found.add(target)
        return found

    def segments(
        self, tz: ZoneInfo, t0: datetime, t1: datetime, users: Mapping[str, str]
    ) -> list[Segment]:
        """Events overlapping [t0, t1) as segments, by start; `users` maps e-mail to user id."""
        segments = []
        start, stop = (t0 - QUERY_PAD).astimezone(tz), (t1 + QUERY_PAD).astimezone(tz)
        for event in self.query.between(start, stop):  # padded: floating times, clock changes
            if str(event.get("STATUS", "")).upper() == "CANCELLED":
                continue
            target = summary_target(str(event.get("SUMMARY", "")))
            user = users.get(target) if target and "@" in target else target
            span = _span(event, tz)
            if user is not None and span is not None:
                segments.append(Segment(user, span[0], span[1], "ical"))
        return sorted(segments, key=lambda seg: seg.start)


def parse_calendar(data: bytes) -> Calendar:
    """A calendar from the bytes of an .ics file; IcalError when it is not one."""
    try:
        calendar = icalendar.Calendar.from_ical(data)
    except (ValueError, IndexError, KeyError) as exc:
        raise IcalError(f"not an iCalendar file ({_one_line(exc)})") from None
    if getattr(calendar, "name", None) != "VCALENDAR":
        raise IcalError("not an iCalendar file (no VCALENDAR)")
    try:
        query = recurring_ical_events.of(calendar)
        summaries = frozenset(str(e.get("SUMMARY", "")) for e in calendar.walk("VEVENT"))
    except Exception as exc:  # the library's errors for broken rules and periods
        raise IcalError(f"bad event in the calendar ({_one_line(exc)})") from None
    return Calendar(query, summaries)


async def fetch_calendar(location: str, http: httpx.AsyncClient, timeout_s: float) -> Calendar:
    """Read a calendar from a file path or an http(s) URL; IcalError saying why it failed."""
    if location.startswith(("http://", "https://")):
        data = await _download(location, http, timeout_s)
    else:
        try:
            with open(location, "rb") as file:  # noqa: ASYNC230 - a small local file
                data = file.read(MAX_BYTES + 1)
        except OSError as exc:
            raise IcalError(f"cannot read {location}: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise IcalError(f"{location} is larger than {MAX_BYTES} bytes")
    return parse_calendar(data)


async def _download(url: str, http: httpx.AsyncClient, timeout_s: float) -> bytes:
    where = display_location(url)
    try:
        response = await http.get(url, timeout=timeout_s, follow_redirects=True)
    except httpx.TimeoutException:
        raise IcalError(f"{where} did not answer within {timeout_s:g} s") from None
    except httpx.HTTPError as exc:
        raise IcalError(f"{where} is unreachable ({type(exc).__name__})") from None
    if response.status_code != 200:
        raise IcalError(f"{where} answered HTTP {response.status_code}")
    return response.content


def display_location(location: str) -> str:
    """A location fit for logs and errors: a URL's scheme and host only (calendar export links
    carry a private token in their path), a file path as it is."""
    parts = urlsplit(location)
    return f"{parts.scheme}://{parts.netloc}/…" if parts.scheme in {"http", "https"} else location


def summary_target(summary: str) -> str | None:
    """The Slack user id a summary is, or the e-mail it contains (lower case), else None."""
    text = summary.strip()
    if _USER_ID.fullmatch(text):
        return text
    found = _EMAIL.search(text)
    return found.group(0).lower() if found else None


def _span(event: Any, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    start = event["DTSTART"].dt
    if "DTEND" in event:
        end = event["DTEND"].dt
    elif "DURATION" in event:
        end = start + event["DURATION"].dt
    else:  # RFC 5545: a date lasts one day, a date-time no time at all
        end = start + timedelta(days=1) if not isinstance(start, datetime) else start
    begin, finish = _instant(start, tz), _instant(end, tz)
    return (begin, finish) if finish > begin else None


def _instant(value: date | datetime, tz: ZoneInfo) -> datetime:
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        return local_instant(value, tz)
    return value.astimezone(UTC)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]
