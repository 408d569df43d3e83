"""The facts behind `/incident oncall [SCHEDULE]`: who is on call, until when, who is next.

Structured, so the Slack wording (bot/messages/escalation.py) and any other front end share one
answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from firebreak.oncall.schedules import NextShift, OnCall, Shift

__all__ = ["OnCallAnswer", "oncall_answers"]


@dataclass(frozen=True)
class OnCallAnswer:
    schedule: str
    timezone: str
    on_call: Shift
    next: NextShift | None


def oncall_answers(oncall: OnCall, name: str | None, at: datetime) -> list[OnCallAnswer]:
    """One answer for schedule `name`, or for every schedule when `name` is None or empty.
    Raises `UnknownSchedule` (its message lists the schedules) for a name not configured."""
    names = [name] if name else oncall.names()
    return [
        OnCallAnswer(
            schedule=each,
            timezone=oncall.schedule(each).timezone,
            on_call=oncall.who(each, at),
            next=oncall.next(each, at),
        )
        for each in names
    ]
