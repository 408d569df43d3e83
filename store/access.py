"""What deciding who may act on an incident reads: its labels, its ladder's policy, who was
paged for it, and where its card lives.

Reads take an `AsyncConnection`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from firebreak.store.models import EscalationState, Incident, SlackMessage, TimelineEvent
from firebreak.store.schemas import EventType

__all__ = ["ResponderFacts", "card_channels", "responder_facts"]


@dataclass(frozen=True)
class ResponderFacts:
    """An incident as its responders are found from it."""

    incident_id: int
    labels: dict[str, str]
    severity: str
    service: str
    policy: dict[str, Any] | None  # the ladder's snapshot; None before its ladder started
    paged: list[str] = field(default_factory=list)  # every target paged for it, oldest first


async def responder_facts(conn: AsyncConnection, incident_id: int) -> ResponderFacts | None:
    """None when there is no such incident."""
    row = (
        await conn.execute(
            select(Incident.labels, Incident.severity, Incident.service, EscalationState.policy)
            .outerjoin(EscalationState, EscalationState.incident_id == Incident.id)
            .where(Incident.id == incident_id)
        )
    ).first()
    if row is None:
        return None
    pages = await conn.execute(
        select(TimelineEvent.data)
        .where(
            TimelineEvent.incident_id == incident_id,
            TimelineEvent.type == EventType.ESCALATED.value,
        )
        .order_by(TimelineEvent.id)
    )
    paged = [t for (data,) in pages for t in (data or {}).get("targets") or [] if t]
    return ResponderFacts(
        incident_id,
        dict(row.labels or {}),
        row.severity or "",
        row.service or "",
        row.policy,
        paged,
    )


async def card_channels(conn: AsyncConnection, incident_ids: list[int]) -> dict[int, str]:
    """The channel each incident's card was posted in (incidents without a card left out)."""
    if not incident_ids:
        return {}
    rows = await conn.execute(
        select(SlackMessage.incident_id, SlackMessage.channel).where(
            SlackMessage.incident_id.in_(incident_ids), SlackMessage.purpose == "card"
        )
    )
    return {row.incident_id: row.channel for row in rows}
