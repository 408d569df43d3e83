"""Who is on call between two instants: layers of segments painted over each other.

A schedule is a base layer (a rotation, or the events of an iCal calendar) with its overrides
painted on top, each later-listed override over the earlier ones. `paint` keeps the result a
sorted list of non-overlapping segments covering the window; where no layer says anything the
segment's user is None (nobody on call). Instants are aware datetimes, compared in UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

__all__ = ["NOBODY", "Segment", "local_instant", "merge", "paint", "segment_at"]

NOBODY = "nobody"  # the reason of a segment without a user


@dataclass(frozen=True)
class Segment:
    """`user` (None: nobody) is on call from `start` (inclusive) to `end` (exclusive)."""

    user: str | None
    start: datetime
    end: datetime
    reason: str = NOBODY


def local_instant(local: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant of a wall-clock time in `tz`, read as zoneinfo does with fold=0: a time
    the spring change skips lands one gap later (02:30 -> 03:30), a repeated one is the first."""
    return local.replace(tzinfo=tz, fold=0).astimezone(UTC)


def paint(t0: datetime, t1: datetime, layers: Iterable[Segment]) -> list[Segment]:
    """[t0, t1) covered by segments, each of `layers` painted over the ones before it."""
    result = [Segment(None, t0, t1)]
    for top in layers:
        start, end = max(top.start, t0), min(top.end, t1)
        if start >= end:
            continue
        kept: list[Segment] = []
        for seg in result:
            if seg.end <= start or seg.start >= end:
                kept.append(seg)
                continue
            if seg.start < start:
                kept.append(replace(seg, end=start))
            if seg.end > end:
                kept.append(replace(seg, start=end))
        kept.append(replace(top, start=start, end=end))
        result = sorted(kept, key=lambda s: s.start)
    return result


def merge(segments: Sequence[Segment]) -> list[Segment]:
    """Adjacent segments of the same user joined (the first one's reason kept)."""
    merged: list[Segment] = []
    for seg in segments:
        if merged and merged[-1].user == seg.user and merged[-1].end == seg.start:
            merged[-1] = replace(merged[-1], end=seg.end)
        else:
            merged.append(seg)
    return merged


def segment_at(segments: Sequence[Segment], at: datetime) -> int:
    """Index of the segment containing `at` (the segments cover it)."""
    for index, seg in enumerate(segments):
        if seg.start <= at < seg.end:
            return index
    raise ValueError(f"{at.isoformat()} is outside the segments")
