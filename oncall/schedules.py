"""`OnCall`: who is on call for each configured schedule, at any instant.

The questions (`who`, `next`, `handoffs_between`, `resolve_targets`) are answered from memory,
synchronously, so an escalation step or an API request never waits on a calendar download.
`refresh` is the only I/O: it re-reads each iCal schedule when its `ical_refresh_s` is due and
resolves the e-mail addresses its events name through the injected `lookup_email` (Slack's
`users.lookupByEmail`), caching every address found. A failed read keeps the last good copy;
it is logged and counted in `firebreak_schedule_refresh_failures_total{schedule}`. URLs are
logged by host only: calendar export links usually carry a private token in their path.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import structlog
from prometheus_client import CollectorRegistry

from firebreak.oncall.config import ScheduleConfig, schedule_name
from firebreak.oncall.ical import Calendar, IcalError, display_location, fetch_calendar
from firebreak.oncall.rotation import override_segments, rotation_segments
from firebreak.oncall.timeline import Segment, merge, paint, segment_at
from firebreak.tools.metrics import metrics_on

__all__ = ["LookupEmail", "NextShift", "OnCall", "PageTarget", "Shift", "UnknownSchedule"]

log = structlog.get_logger(__name__)

LookupEmail = Callable[[str], Awaitable[str | None]]
FIRST_HORIZON = timedelta(days=1)
MAX_HORIZON = timedelta(days=366)  # a shift longer than this reports no since/until
EARLIEST = datetime(1971, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Shift:
    """`user` (None: nobody) is on call for `schedule` from `since` to `until`; None there
    means further away than a year. `reason` is where it comes from: `rotation`, `override`,
    `ical` or `nobody`. Instants are in UTC (aware datetimes in a zone with clock changes
    subtract and compare by the wall clock); show them with `OnCall.schedule(name).tz`."""

    schedule: str
    user: str | None
    since: datetime | None
    until: datetime | None
    reason: str


@dataclass(frozen=True)
class NextShift:
    """`user` takes over at `at` (UTC)."""

    user: str
    at: datetime


@dataclass(frozen=True)
class PageTarget:
    """One target of an escalation step. `target` is a Slack id to page, or None when the
    schedule has nobody on call (then `reason` says so and the caller should tell the
    thread). `reason` is None for ids written as they are in the policy."""

    target: str | None
    reason: str | None = None
    schedule: str | None = None


class UnknownSchedule(KeyError):
    """No schedule of that name; the message lists the ones there are."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        names = ", ".join(known) or "none configured"
        super().__init__(f"no schedule {name!r} (schedules: {names})")
        self.name = name

    def __str__(self) -> str:
        return str(self.args[0])


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("at must carry a timezone")
    if not EARLIEST <= at <= LATEST:  # the horizons around it must stay representable
        raise ValueError(f"at must be between {EARLIEST.year} and {LATEST.year}")
    return at.astimezone(UTC)


class OnCall:
    """The schedules of one configuration. Call `await refresh(force=True)` once at start, then
    `await refresh()` every few seconds (it reads only what is due); `aclose()` at the end."""

    def __init__(
        self,
        schedules: Sequence[ScheduleConfig],
        *,
        registry: CollectorRegistry,
        lookup_email: LookupEmail | None = None,
        http: httpx.AsyncClient | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._schedules = {schedule.name: schedule for schedule in schedules}
        self._lookup_email = lookup_email
        self._http = http
        self._own_http = http is None
        self._monotonic = monotonic
        self._calendars: dict[str, Calendar] = {}
        self._due: dict[str, float] = {}
        self._emails: dict[str, str] = {}
        self._failures = metrics_on(registry).schedules.refresh_failures
        for schedule in schedules:
            if schedule.ical is not None:
                self._failures.labels(schedule.name)

    # ------------------------------------------------------------------ the schedules

    def names(self) -> list[str]:
        return list(self._schedules)

    def schedule(self, name: str) -> ScheduleConfig:
        found = self._schedules.get(name)
        if found is None:
            raise UnknownSchedule(name, self._schedules)
        return found

    def handoff_schedules(self) -> list[str]:
        """Schedules with `notify_handoff: true`."""
        return [name for name, schedule in self._schedules.items() if schedule.notify_handoff]

    # ------------------------------------------------------------------ questions

    def who(self, name: str, at: datetime) -> Shift:
        """Who is on call for `name` at `at`, and the whole of their stretch."""
        schedule, at = self.schedule(name), _aware(at)
        horizon = FIRST_HORIZON
        while True:
            t0, t1 = at - horizon, at + horizon
            raw = self._paint(schedule, t0, t1)
            merged = merge(raw)
            seg = merged[segment_at(merged, at)]
            if horizon >= MAX_HORIZON or (seg.start > t0 and seg.end < t1):
                reason = raw[segment_at(raw, at)].reason
                since = None if seg.start == t0 else seg.start
                until = None if seg.end == t1 else seg.end
                return Shift(name, seg.user, since, until, reason)
            horizon = min(horizon * 4, MAX_HORIZON)

    def next(self, name: str, at: datetime) -> NextShift | None:
        """Who takes over after the stretch `at` is in, and when; None if nobody within a year."""
        current = self.who(name, at)
        if current.until is None:
            return None
        schedule, start, horizon = self.schedule(name), current.until, FIRST_HORIZON
        while True:
            for seg in merge(self._paint(schedule, start, start + horizon)):
                if seg.user is not None:
                    return NextShift(seg.user, seg.start)
            if horizon >= MAX_HORIZON:
                return None
            horizon = min(horizon * 4, MAX_HORIZON)

    def handoffs_between(self, name: str, t0: datetime, t1: datetime) -> list[Shift]:
        """The shifts that begin in (t0, t1] with someone on call: whom to greet at a handoff.
        Consecutive windows (t0, t1], (t1, t2] see each handoff exactly once."""
        schedule, t0, t1 = self.schedule(name), _aware(t0), _aware(t1)
        end = t1 + timedelta(microseconds=1)
        starts = [
            seg.start
            for seg in merge(self._paint(schedule, t0, end))
            if seg.start > t0 and seg.user is not None
        ]
        return [self.who(name, start) for start in starts]

    def resolve_targets(self, notify: Iterable[str], at: datetime) -> list[PageTarget]:
        """An escalation step's `notify` with each `schedule:NAME` replaced by whoever is on
        call for NAME at `at` (reason "on call for NAME"); Slack ids pass as they are. A
        target named twice is paged once."""
        resolved: list[PageTarget] = []
        for target in notify:
            name = schedule_name(target)
            if name is None:
                resolved.append(PageTarget(target))
            elif name not in self._schedules:
                log.warning("escalation names an unknown schedule", schedule=name)
                resolved.append(PageTarget(None, f"no schedule {name}", name))
            else:
                user = self.who(name, at).user
                reason = f"on call for {name}" if user else f"nobody is on call for {name}"
                resolved.append(PageTarget(user, reason, name))
        seen: set[str] = set()
        unique = []
        for page in resolved:
            if page.target is None or page.target not in seen:
                unique.append(page)
                seen.add(page.target or "")
        return unique

    def _paint(self, schedule: ScheduleConfig, t0: datetime, t1: datetime) -> list[Segment]:
        tz = schedule.tz
        if schedule.rotation is not None:
            base = rotation_segments(schedule.rotation, tz, t0, t1)
        else:
            calendar = self._calendars.get(schedule.name)
            base = calendar.segments(tz, t0, t1, self._emails) if calendar else []
        return paint(t0, t1, [*base, *override_segments(schedule.overrides, tz)])

    # ------------------------------------------------------------------ calendars

    @property
    def refresh_interval_s(self) -> float | None:
        """The shortest `ical_refresh_s`: how often `refresh` is worth calling (None: never)."""
        intervals = [s.ical_refresh_s for s in self._schedules.values() if s.ical is not None]
        return min(intervals) if intervals else None

    async def refresh(self, *, force: bool = False) -> None:
        """Re-read each iCal schedule whose `ical_refresh_s` has passed (all with `force`)."""
        now = self._monotonic()
        for schedule in self._schedules.values():
            if schedule.ical is None or (not force and now < self._due.get(schedule.name, 0)):
                continue
            self._due[schedule.name] = now + schedule.ical_refresh_s
            await self._read(schedule, schedule.ical)

    async def _read(self, schedule: ScheduleConfig, location: str) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(headers={"User-Agent": "firebreak"})
        try:
            calendar = await fetch_calendar(location, self._http, schedule.ical_timeout_s)
        except IcalError as exc:
            self._failures.labels(schedule.name).inc()
            log.warning(
                "schedule read failed",
                schedule=schedule.name,
                ical=display_location(location),
                error=str(exc),
                kept_last_good=schedule.name in self._calendars,
            )
            return
        await self._resolve_emails(calendar.emails())
        self._calendars[schedule.name] = calendar

    async def _resolve_emails(self, emails: set[str]) -> None:
        """Look up each address not cached yet; one not found is asked again next read."""
        for email in sorted(emails - self._emails.keys()):
            if self._lookup_email is None:
                log.warning("schedule names an e-mail but no Slack lookup is configured")
                return
            try:
                user = await self._lookup_email(email)
            except Exception as exc:  # Slack down or refusing: that event names nobody for now
                log.warning("e-mail lookup failed", email=email, error=repr(exc)[:300])
                continue
            if user is None:
                log.warning("no Slack user has this e-mail", email=email)
            else:
                self._emails[email] = user

    async def aclose(self) -> None:
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None
