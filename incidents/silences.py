"""Silence an incident's alert group in Alertmanager, and lift the silence, from any surface.

Alertmanager first, the store after: `silence` creates the silence (matching the incident's
group labels, `createdBy` the person, a comment linking the incident page), then records it
in one writer transaction (the `incident_silences` row the card reads and a `SILENCED` event
with the silence id). When Alertmanager is down or refuses, nothing is recorded and the
outcome says why. A silence that replaces an earlier one expires the earlier one afterwards.
`unsilence` expires the recorded silence, then forgets it (`UNSILENCED`). Both announce
`UPDATED` on the bus, which refreshes the card. The surfaces word the `SilenceOutcome`.

A silence that runs out is ended by `SilenceEnds`, a scheduler job kind (`sil`, reconciled from
the `incident_silences` rows like every deadline, so it survives restarts and fires on the
elected replica only): at `ends_at` it forgets the row, records `UNSILENCED` (actor
`alertmanager`, `data.expired` true) and refreshes the card, which would otherwise say
"Silenced until" a time already past until something else redrew it.

The group labels are read back from Alertmanager's group key (`…:{alertname="X", …}`); they are
used only when every one of them is among the incident's labels (which hold the group's common
labels, a superset), else the incident's labels are matched, which is never wider.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any

import structlog
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from firebreak.incidents.events import Change, EventBus, IncidentEvent
from firebreak.scheduler.core import Due, JobKind
from firebreak.store import incidents
from firebreak.store.incidents import incident_exists, record_event, utcnow
from firebreak.store.schemas import EventType
from firebreak.store.silences import (
    ActiveSilence,
    active_silence,
    clear_silence,
    save_silence,
    silence_ends,
    silence_of,
)
from firebreak.store.writer import Writer
from firebreak.tools.alertmanager import AlertmanagerClient, AlertmanagerError, parse_duration

__all__ = [
    "SILENCE_END",
    "SilenceEnds",
    "SilenceOps",
    "SilenceOutcome",
    "SilenceResult",
    "group_labels",
]

log = structlog.get_logger(__name__)

SILENCE_END = "sil"  # the scheduler's job kind
_EARLY = timedelta(seconds=1)  # a job may fire this much before the stored end (rounding)
_GROUP_LABEL = re.compile(r'([^\s=,{}"]+)="((?:[^"\\]|\\.)*)"')


class SilenceResult(StrEnum):
    SILENCED = "silenced"
    UNSILENCED = "unsilenced"
    MISSING = "missing"  # no such incident
    NOT_SILENCED = "not_silenced"  # nothing to unsilence
    NOT_CONFIGURED = "not_configured"  # no `alertmanager:` section
    BAD_DURATION = "bad_duration"
    NOTHING_TO_MATCH = "nothing_to_match"  # a declared incident has no labels
    FAILED = "failed"  # Alertmanager down or refusing: nothing recorded


@dataclass(frozen=True)
class SilenceOutcome:
    result: SilenceResult
    incident_id: int
    silence_id: str | None = None
    until: datetime | None = None
    by: str | None = None
    error: str | None = None  # why, for people (a duration's problem, Alertmanager's answer)

    @property
    def changed(self) -> bool:
        return self.result in (SilenceResult.SILENCED, SilenceResult.UNSILENCED)


def group_labels(group_key: str | None, labels: Mapping[str, str]) -> dict[str, str]:
    """The labels a silence of the incident matches: its group labels when the group key
    names them and they agree with the incident's labels, else all of the incident's."""
    head, sep, tail = (group_key or "").rpartition(":{")
    if sep and head and tail.endswith("}"):
        found = {name: _unquote(value) for name, value in _GROUP_LABEL.findall(tail[:-1])}
        if found and all(labels.get(name) == value for name, value in found.items()):
            return found
    return dict(labels)


def _unquote(value: str) -> str:
    try:
        return str(json.loads(f'"{value}"'))
    except ValueError:
        return value


@dataclass(kw_only=True, eq=False)
class SilenceOps:
    """Silence and unsilence incidents (`alertmanager` None: not configured)."""

    engine: AsyncEngine
    writer: Writer
    bus: EventBus
    alertmanager: AlertmanagerClient | None
    public_url: str

    def __post_init__(self) -> None:
        self.public_url = self.public_url.rstrip("/")

    @property
    def configured(self) -> bool:
        return self.alertmanager is not None

    def incident_url(self, incident_id: int) -> str:
        return f"{self.public_url}/incidents/{incident_id}"

    async def silence(self, incident_id: int, duration: str, actor: str) -> SilenceOutcome:
        if self.alertmanager is None:
            return SilenceOutcome(SilenceResult.NOT_CONFIGURED, incident_id)
        try:
            length = parse_duration(duration)
        except ValueError as exc:
            return SilenceOutcome(SilenceResult.BAD_DURATION, incident_id, error=str(exc))
        async with self.engine.connect() as conn:
            incident = await incidents.get_incident(conn, incident_id, with_alerts=False)
        if incident is None:
            return SilenceOutcome(SilenceResult.MISSING, incident_id)
        matchers = group_labels(incident.group_key, incident.labels)
        if not matchers:
            return SilenceOutcome(SilenceResult.NOTHING_TO_MATCH, incident_id)
        now = utcnow()
        until = now + length
        link = self.incident_url(incident_id)
        comment = f"Silenced from Firebreak incident #{incident_id}: {link}"
        try:
            silence_id = await self.alertmanager.create_silence(
                matchers, now, until, actor, comment
            )
        except AlertmanagerError as exc:
            log.warning("silence failed", incident_id=incident_id, reason=exc.reason)
            return SilenceOutcome(SilenceResult.FAILED, incident_id, error=str(exc))
        silence = ActiveSilence(silence_id, until, actor, now)
        recorded = await self.writer.run(
            partial(
                _record_silence,
                incident_id=incident_id,
                silence=silence,
                duration=duration.strip().lower(),
                matchers=matchers,
            )
        )
        if recorded is _GONE:  # deleted meanwhile (retention): do not leave the silence behind
            await self._expire_quietly(incident_id, silence_id)
            return SilenceOutcome(SilenceResult.MISSING, incident_id)
        if isinstance(recorded, str):
            await self._expire_quietly(incident_id, recorded)
        log.info("incident silenced", incident_id=incident_id, silence_id=silence_id, by=actor)
        self.bus.publish(IncidentEvent(incident_id, Change.UPDATED, actor))
        return SilenceOutcome(SilenceResult.SILENCED, incident_id, silence_id, until, actor)

    async def unsilence(self, incident_id: int, actor: str) -> SilenceOutcome:
        if self.alertmanager is None:
            return SilenceOutcome(SilenceResult.NOT_CONFIGURED, incident_id)
        async with self.engine.connect() as conn:
            if not await incidents.exists(conn, incident_id):
                return SilenceOutcome(SilenceResult.MISSING, incident_id)
            current = await active_silence(conn, incident_id, utcnow())
        if current is None:
            return SilenceOutcome(SilenceResult.NOT_SILENCED, incident_id)
        try:
            await self.alertmanager.expire_silence(current.silence_id)
        except AlertmanagerError as exc:
            if exc.reason != "not_found":  # already gone from Alertmanager: just forget it
                log.warning("unsilence failed", incident_id=incident_id, reason=exc.reason)
                return SilenceOutcome(SilenceResult.FAILED, incident_id, error=str(exc))
        cleared = await self.writer.run(
            partial(_record_unsilence, incident_id=incident_id, silence=current, actor=actor)
        )
        if not cleared:  # someone else unsilenced or replaced it meanwhile
            return SilenceOutcome(SilenceResult.NOT_SILENCED, incident_id)
        log.info("incident unsilenced", incident_id=incident_id, silence_id=current.silence_id)
        self.bus.publish(IncidentEvent(incident_id, Change.UPDATED, actor))
        return SilenceOutcome(
            SilenceResult.UNSILENCED, incident_id, current.silence_id, current.ends_at, actor
        )

    async def _expire_quietly(self, incident_id: int, silence_id: str) -> None:
        assert self.alertmanager is not None
        try:
            await self.alertmanager.expire_silence(silence_id)
        except AlertmanagerError as exc:
            log.warning(
                "could not expire a replaced silence",
                incident_id=incident_id,
                silence_id=silence_id,
                error=str(exc),
            )

    async def aclose(self) -> None:
        if self.alertmanager is not None:
            await self.alertmanager.aclose()


class SilenceEnds:
    """The `sil` job kind: a silence that ran out leaves the card (key: the incident, token:
    the silence's end in epoch seconds, so a silence replaced since is recognisably stale)."""

    def __init__(self, *, writer: Writer, bus: EventBus) -> None:
        self.writer = writer
        self.bus = bus

    def job_kind(self) -> JobKind:
        return JobKind(SILENCE_END, self.fire, pending_ends)

    async def fire(self, incident_id: int, token: int) -> bool:
        """End the incident's silence if it is still the one ending at `token`; True if so."""
        ended = await self.writer.run(partial(_record_end, incident_id=incident_id, token=token))
        if ended:
            log.info("silence ran out", incident_id=incident_id)
            self.bus.publish(IncidentEvent(incident_id, Change.UPDATED, "alertmanager"))
        return ended


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


def pending_ends(conn: Connection) -> list[Due]:
    """Every recorded silence's end (ended ones too: their job was lost, they fire late)."""
    return [
        Due(SILENCE_END, incident_id, _epoch(ends_at), ends_at)
        for incident_id, ends_at in silence_ends(conn)
    ]


def _record_end(conn: Connection, *, incident_id: int, token: int) -> bool:
    silence = silence_of(conn, incident_id)
    if silence is None or _epoch(silence.ends_at) != token:
        return False  # lifted or replaced meanwhile
    if silence.ends_at - _EARLY > utcnow():
        return False
    clear_silence(conn, incident_id, silence.silence_id)
    record_event(
        conn,
        incident_id,
        EventType.UNSILENCED,
        "alertmanager",
        f"Silence {silence.silence_id} ran out at {_minute(silence.ends_at)}",
        {
            "silence_id": silence.silence_id,
            "was_until": silence.ends_at.isoformat(),
            "expired": True,
        },
    )
    return True


_GONE = object()


def _record_silence(
    conn: Connection,
    *,
    incident_id: int,
    silence: ActiveSilence,
    duration: str,
    matchers: dict[str, str],
) -> Any:
    """The row and the SILENCED event; the id of the silence replaced (or None), or _GONE."""
    if not incident_exists(conn, incident_id):
        return _GONE
    replaced = save_silence(conn, incident_id, silence)
    record_event(
        conn,
        incident_id,
        EventType.SILENCED,
        silence.created_by,
        f"Alerts silenced for {duration} (until {_minute(silence.ends_at)}) by "
        f"{silence.created_by}: Alertmanager silence {silence.silence_id}",
        {
            "silence_id": silence.silence_id,
            "until": silence.ends_at.isoformat(),
            "duration": duration,
            "matchers": matchers,
            "replaces": replaced,
        },
    )
    return replaced


def _record_unsilence(
    conn: Connection, *, incident_id: int, silence: ActiveSilence, actor: str
) -> bool:
    if not clear_silence(conn, incident_id, silence.silence_id):
        return False
    record_event(
        conn,
        incident_id,
        EventType.UNSILENCED,
        actor,
        f"Silence {silence.silence_id} lifted by {actor}",
        {"silence_id": silence.silence_id, "was_until": silence.ends_at.isoformat()},
    )
    return True


def _minute(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")
