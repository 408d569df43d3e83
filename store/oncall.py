"""What an incident's card says about on-call and silences, and the handoff greetings sent.

- The silence an incident's group is under (`incident_silences`, one row per incident): the
  card shows "Silenced until … by …" and an Unsilence button from it. A new silence replaces
  the row and hands back the one it replaced, so the caller can expire that one in
  Alertmanager; Unsilence deletes the row only if it still names the silence it expired.
- The last page (the latest `ESCALATED` event's data): who was paged and why.
- Handoff greetings share the Slack de-duplication table (`slack_events_seen`, keys
  `handoff:SCHEDULE:EPOCH`), so each is sent once by whichever replica claims it first.

Reads take an `AsyncConnection` (or a blocking one where a worker thread reads); writes take
a blocking `Connection` and run on the store writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from firebreak.store.db import conflict_insert
from firebreak.store.models import IncidentSilence, SlackEventSeen, TimelineEvent
from firebreak.store.schemas import EventType

__all__ = [
    "ActiveSilence",
    "LastPage",
    "active_silence",
    "clear_silence",
    "handoff_key",
    "handoffs_sent",
    "last_page",
    "save_silence",
    "silence_of",
]


@dataclass(frozen=True)
class ActiveSilence:
    silence_id: str
    ends_at: datetime
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class LastPage:
    """The latest escalation page: `targets` paged, `reasons` why (target -> "on call for
    NAME"), `unstaffed` what found nobody ("nobody is on call for NAME")."""

    level: int
    targets: list[str]
    reasons: dict[str, str]
    unstaffed: list[str]


def _silence(row: Any) -> ActiveSilence:
    return ActiveSilence(row.silence_id, row.ends_at, row.created_by, row.created_at)


_SILENCE = select(
    IncidentSilence.silence_id,
    IncidentSilence.ends_at,
    IncidentSilence.created_by,
    IncidentSilence.created_at,
)


async def active_silence(
    conn: AsyncConnection, incident_id: int, now: datetime
) -> ActiveSilence | None:
    """The silence the incident is under now (None: none, or it has ended)."""
    row = (
        await conn.execute(
            _SILENCE.where(
                IncidentSilence.incident_id == incident_id, IncidentSilence.ends_at > now
            )
        )
    ).first()
    return _silence(row) if row else None


def silence_of(conn: Connection, incident_id: int) -> ActiveSilence | None:
    """The recorded silence, ended or not (the writer's view)."""
    row = conn.execute(_SILENCE.where(IncidentSilence.incident_id == incident_id)).first()
    return _silence(row) if row else None


def save_silence(conn: Connection, incident_id: int, silence: ActiveSilence) -> str | None:
    """Record `silence` for the incident; returns the id of the silence it replaces, if any."""
    previous = silence_of(conn, incident_id)
    if previous is not None:
        conn.execute(delete(IncidentSilence).where(IncidentSilence.incident_id == incident_id))
    conn.execute(
        conflict_insert(conn, IncidentSilence)
        .values(
            incident_id=incident_id,
            silence_id=silence.silence_id,
            ends_at=silence.ends_at,
            created_by=silence.created_by,
            created_at=silence.created_at,
        )
        .on_conflict_do_nothing(index_elements=["incident_id"])
    )
    if previous is None or previous.silence_id == silence.silence_id:
        return None
    return previous.silence_id


def clear_silence(conn: Connection, incident_id: int, silence_id: str) -> bool:
    """Forget the incident's silence if it is still `silence_id`; True when it was."""
    result = conn.execute(
        delete(IncidentSilence).where(
            IncidentSilence.incident_id == incident_id, IncidentSilence.silence_id == silence_id
        )
    )
    return result.rowcount == 1


async def last_page(conn: AsyncConnection, incident_id: int) -> LastPage | None:
    data = await conn.scalar(
        select(TimelineEvent.data)
        .where(
            TimelineEvent.incident_id == incident_id,
            TimelineEvent.type == EventType.ESCALATED.value,
        )
        .order_by(TimelineEvent.id.desc())
        .limit(1)
    )
    if not isinstance(data, dict):
        return None
    return LastPage(
        level=int(data.get("level") or 0),
        targets=[str(t) for t in data.get("targets") or []],
        reasons={str(k): str(v) for k, v in (data.get("reasons") or {}).items()},
        unstaffed=[str(u) for u in data.get("unstaffed") or []],
    )


def handoff_key(schedule: str, epoch: int) -> str:
    return f"handoff:{schedule}:{epoch}"


def handoffs_sent(conn: Connection, keys: list[str]) -> set[str]:
    """Which of `keys` (`handoff_key`) have been claimed already."""
    if not keys:
        return set()
    rows = conn.execute(select(SlackEventSeen.key).where(SlackEventSeen.key.in_(keys)))
    return {row.key for row in rows}
