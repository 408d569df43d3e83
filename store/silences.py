"""The silence an incident's group is under (`incident_silences`, one row per incident).

The card shows "Silenced until … by …" and an Unsilence button from it. A new silence replaces
the row and hands back the one it replaced, so the caller can expire that one in Alertmanager;
Unsilence deletes the row only if it still names the silence it expired.

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
from firebreak.store.models import IncidentSilence

__all__ = [
    "ActiveSilence",
    "active_silence",
    "clear_silence",
    "save_silence",
    "silence_ends",
    "silence_of",
]


@dataclass(frozen=True)
class ActiveSilence:
    silence_id: str
    ends_at: datetime
    created_by: str
    created_at: datetime


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


def silence_ends(conn: Connection) -> list[tuple[int, datetime]]:
    """(incident, ends_at) of every recorded silence, ended ones too."""
    rows = conn.execute(select(IncidentSilence.incident_id, IncidentSilence.ends_at))
    return [(row.incident_id, row.ends_at) for row in rows]
