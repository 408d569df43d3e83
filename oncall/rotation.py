"""Rotation shifts and overrides as timeline segments, in the schedule's local time.

Shifts are counted in local wall-clock time: handover k is at the local time
`start + k * shift_hours` of the schedule's timezone, resolved by zoneinfo. So a 24 h shift
starting 09:00 always hands over at 09:00, and is 23 real hours long across the March change
and 25 across the October one; a 168 h shift hands over on the same weekday at the same time
(167 or 169 real hours); a 12 h shift at 09:00/21:00 keeps those times, and only the night
shift that contains the change is 11 or 13 hours. People plan shifts on the clock on the wall,
so counting elapsed hours would move every later handover by an hour twice a year. A
handover the spring change skips is read as `timeline.local_instant` says (one hour later).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from firebreak.oncall.config import Override, Rotation
from firebreak.oncall.timeline import Segment, local_instant

__all__ = ["override_segments", "rotation_segments"]


def _handover(rotation: Rotation, tz: ZoneInfo, k: int) -> datetime:
    return local_instant(rotation.start + k * timedelta(hours=rotation.shift_hours), tz)


def _shift_index(rotation: Rotation, tz: ZoneInfo, at: datetime) -> int:
    """The largest k whose handover is at or before `at` (negative before the start)."""
    local = at.astimezone(tz).replace(tzinfo=None)
    k = math.floor((local - rotation.start) / timedelta(hours=rotation.shift_hours))
    while _handover(rotation, tz, k + 1) <= at:  # the wall-clock estimate can be one off
        k += 1  # near a clock change: walk to the exact shift
    while _handover(rotation, tz, k) > at:
        k -= 1
    return k


def rotation_segments(
    rotation: Rotation, tz: ZoneInfo, t0: datetime, t1: datetime
) -> list[Segment]:
    """The rotation's shifts that overlap [t0, t1), unclipped; nobody before `start`."""
    first = max(0, _shift_index(rotation, tz, t0))
    last = _shift_index(rotation, tz, t1)
    segments = []
    for k in range(first, last + 1):
        start, end = _handover(rotation, tz, k), _handover(rotation, tz, k + 1)
        if end > start:  # a shift the spring change swallows whole has no length
            user = rotation.users[k % len(rotation.users)]
            segments.append(Segment(user, start, end, "rotation"))
    return segments


def override_segments(overrides: Sequence[Override], tz: ZoneInfo) -> list[Segment]:
    """Overrides in the order listed, so painting them makes the later-listed win."""
    return [
        Segment(o.user, local_instant(o.start, tz), local_instant(o.end, tz), "override")
        for o in overrides
    ]
