"""The facts of a postmortem, read from the store: times, durations, people, the timeline, the
root cause with its evidence, the remediation runs.

Why a module of its own: the draft (agents/postmortem.py) may have an LLM write its narrative,
but every fact in it comes from here, never from the model. The timeline items are numbered
(`T1`…) so the narrative can cite them and the draft can check that each cited one exists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from firebreak.store import incidents, memory
from firebreak.store.memory import RunFact
from firebreak.store.schemas import EventType, IncidentOut, TimelineEventOut

MACHINE_ACTORS = frozenset({"firebreak", "alertmanager"})
# What the machine did that belongs in the story; everything people did belongs in it too.
MILESTONES = frozenset(
    {
        EventType.INCIDENT_CREATED,
        EventType.REOPENED,
        EventType.ROOT_CAUSE_GENERATED,
        EventType.AI_ANALYSIS_FAILED,
        EventType.ESCALATED,
        EventType.ACKNOWLEDGED,
        EventType.RESOLVED,
        EventType.REMEDIATION_PROPOSED,
        EventType.REMEDIATION_EXECUTED,
        EventType.REMEDIATION_VERIFIED,
    }
)
# Never in the story: the machine's chatter, and drafts of this very document.
LEFT_OUT = frozenset({EventType.POSTMORTEM_DRAFTED, EventType.REMINDER, EventType.ALERT_RECEIVED})
MAX_TIMELINE_ITEMS = 80


@dataclass(frozen=True)
class TimelineItem:
    ref: str  # T1…
    at: datetime
    type: str
    actor: str
    message: str


@dataclass(frozen=True)
class PostmortemFacts:
    incident: IncidentOut  # with its latest analysis
    started_at: datetime  # the earliest alert's startsAt (the opening for a declared one)
    timeline: list[TimelineItem]
    runs: list[RunFact]
    omitted_events: int = 0  # timeline items left out to keep the draft readable

    @property
    def acknowledge_s(self) -> float | None:
        at = self.incident.acknowledged_at
        return None if at is None else (at - self.incident.created_at).total_seconds()

    @property
    def resolve_s(self) -> float | None:
        at = self.incident.resolved_at
        return None if at is None else (at - self.incident.created_at).total_seconds()

    @property
    def impact_s(self) -> float | None:
        at = self.incident.resolved_at
        return None if at is None else (at - self.started_at).total_seconds()

    @property
    def refs(self) -> set[str]:
        return {item.ref for item in self.timeline}

    def people(self) -> list[str]:
        """Everyone who acted, in order of first appearance."""
        seen: dict[str, None] = {}
        for item in self.timeline:
            if item.actor not in MACHINE_ACTORS and item.actor not in ("api", ""):
                seen.setdefault(item.actor)
        return list(seen)


@dataclass(frozen=True)
class PostmortemDraft:
    incident_id: int
    markdown: str
    written_by: str  # "llm" or "template"


def in_story(event: TimelineEventOut) -> bool:
    if event.type in LEFT_OUT:
        return False
    if event.actor not in MACHINE_ACTORS:
        return (event.data or {}).get("kind") != "answer"  # the question is the person's act
    return event.type in MILESTONES


async def gather(
    conn: AsyncConnection, incident_id: int, scrub: Callable[[Any], Any] | None = None
) -> PostmortemFacts | None:
    """Everything a postmortem states, from the store (None: no such incident); the incident's
    label values through `scrub` (`IncidentOut.shown`) when given."""
    incident = await incidents.get_incident(conn, incident_id)
    if incident is not None and scrub is not None:
        incident = incident.shown(scrub)
    events = await incidents.timeline(conn, incident_id)
    if incident is None or events is None:
        return None
    story = [event for event in events if in_story(event)]
    kept = story[:MAX_TIMELINE_ITEMS]
    timeline = [
        TimelineItem(f"T{number}", e.at, e.type, e.actor, e.message)
        for number, e in enumerate(kept, start=1)
    ]
    starts = [alert.starts_at for alert in incident.alerts]
    return PostmortemFacts(
        incident=incident,
        started_at=min(starts) if starts else incident.created_at,
        timeline=timeline,
        runs=await memory.remediation_runs(conn, incident_id),
        omitted_events=len(story) - len(kept),
    )


def time_text(at: datetime | None) -> str:
    return "—" if at is None else at.strftime("%Y-%m-%d %H:%M:%S UTC")
