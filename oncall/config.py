"""The `schedules:` and `routing:` config models, checked once at start.

A bad schedule is refused with one line naming the key, like any config error: an unknown
timezone, a rotation without users, an iCal file that cannot be read or parsed, and (through
`check_schedule_targets`, which the root config calls because only it sees both lists) a
`schedule:NAME` escalation target naming no schedule. Times in a schedule are local wall-clock
times of its `timezone`, written without a UTC offset.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

__all__ = [
    "SCHEDULE_PREFIX",
    "Override",
    "Rotation",
    "RouteRule",
    "Routing",
    "ScheduleConfig",
    "Schedules",
    "check_schedule_targets",
    "is_schedule_target",
    "schedule_name",
]

SCHEDULE_PREFIX = "schedule:"
_USER_ID = re.compile(r"[UW][A-Z0-9]+")
_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]+")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _slack_user(user: str) -> str:
    if not _USER_ID.fullmatch(user):
        raise ValueError(f"{user!r} is not a Slack user id (U… or W…)")
    return user


def _local_time(at: datetime) -> datetime:
    if at.tzinfo is not None:
        raise ValueError("is a local time of the schedule's timezone: write it without an offset")
    return at


SlackUser = Annotated[str, AfterValidator(_slack_user)]
LocalTime = Annotated[datetime, AfterValidator(_local_time)]


class Rotation(_Section):
    """`users[0]` is on call from `start`, then each next user for `shift_hours`, in turn."""

    users: list[SlackUser]
    start: LocalTime
    shift_hours: float = Field(168, ge=1, le=24 * 366)

    @field_validator("users")
    @classmethod
    def _someone(cls, users: list[str]) -> list[str]:
        if not users:
            raise ValueError("a rotation needs at least one user")
        return users


class Override(_Section):
    """`user` is on call from `start` to `end` (local times), whatever else says."""

    user: SlackUser
    start: LocalTime
    end: LocalTime

    @model_validator(mode="after")
    def _ordered(self) -> Override:
        if self.end <= self.start:
            raise ValueError("an override must end after it starts")
        return self


class ScheduleConfig(_Section):
    name: str
    timezone: str = "UTC"
    rotation: Rotation | None = None
    ical: str | None = None  # a file path or an http(s) URL
    ical_refresh_s: float = Field(300, ge=1)  # how often the calendar is read again
    ical_timeout_s: float = Field(10, gt=0)
    overrides: list[Override] = []  # the later-listed wins where two overlap
    notify_handoff: bool = False  # DM the incoming person at each shift change

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def ical_is_url(self) -> bool:
        return self.ical is not None and _is_url(self.ical)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if not _NAME.fullmatch(name):
            raise ValueError("must be letters, digits, '.', '_' or '-' (at most 64)")
        return name

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, timezone: str) -> str:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {timezone!r} (an IANA name: Europe/Berlin)"
            ) from None
        return timezone

    @field_validator("ical")
    @classmethod
    def _readable_ical(cls, ical: str | None) -> str | None:
        if ical is None or _is_url(ical):
            return ical
        # icalendar costs 50 ms to import: paid by configs with a calendar only, not by every
        # command that loads the config
        from firebreak.oncall.ical import IcalError, parse_calendar

        try:
            parse_calendar(Path(ical).read_bytes())
        except (OSError, IcalError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ValueError(f"cannot read iCal file {ical}: {reason}") from None
        return ical

    @model_validator(mode="after")
    def _one_source(self) -> ScheduleConfig:
        if self.rotation is None and self.ical is None:
            raise ValueError(f"schedule {self.name!r} needs a rotation or an ical")
        if self.rotation is not None and self.ical is not None:
            raise ValueError(f"schedule {self.name!r} has both a rotation and an ical: keep one")
        return self


def _is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def _unique_names(schedules: list[ScheduleConfig]) -> list[ScheduleConfig]:
    seen: set[str] = set()
    for schedule in schedules:
        if schedule.name in seen:
            raise ValueError(f"two schedules are named {schedule.name!r}")
        seen.add(schedule.name)
    return schedules


Schedules = Annotated[list[ScheduleConfig], AfterValidator(_unique_names)]


class RouteRule(_Section):
    """Incidents whose labels equal every `match` entry go to `channel`."""

    match: dict[str, str] = {}
    channel: str

    @field_validator("channel")
    @classmethod
    def _channel_id(cls, channel: str) -> str:
        if not _CHANNEL_ID.fullmatch(channel):
            raise ValueError(f"{channel!r} is not a Slack channel id (C… or G…)")
        return channel


Routing = list[RouteRule]


def is_schedule_target(target: str) -> bool:
    """`schedule:NAME` in an escalation level's `notify`."""
    return target.startswith(SCHEDULE_PREFIX) and len(target) > len(SCHEDULE_PREFIX)


def schedule_name(target: str) -> str | None:
    """NAME of a `schedule:NAME` target, else None."""
    return target[len(SCHEDULE_PREFIX) :] if is_schedule_target(target) else None


def check_schedule_targets(
    targets: Mapping[str, Sequence[str]], schedule_names: Collection[str]
) -> None:
    """Refuse a `schedule:NAME` naming no schedule. `targets` maps where a notify list lives
    (`escalation.policies.0.levels.1.notify`) to the list. Raises pydantic's custom error so a
    model validator reports the message as it is."""
    for where, notify in targets.items():
        for target in notify:
            name = schedule_name(target)
            if name is not None and name not in schedule_names:
                known = ", ".join(sorted(schedule_names)) or "none configured"
                raise PydanticCustomError(
                    "unknown_schedule",
                    "{where}: {target} names no schedule (schedules: {known})",
                    {"where": where, "target": target, "known": known},
                )
