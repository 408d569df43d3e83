"""Incident events inside one process: the seam between ingestion and the slow work.

The webhook publishes after commit; the Slack card, the investigation and the escalation
ladder subscribe. Subscribers must only schedule work (never block or await), so the webhook
never waits for Slack or the LLM.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import structlog

log = structlog.get_logger(__name__)


class Change(StrEnum):
    OPENED = "opened"  # created, reopened or declared
    ALERTS = "alerts"  # more alerts joined, or changed, in an open incident (routine)
    UPDATED = "updated"  # acknowledged, escalated, analysed...
    RESOLVED = "resolved"


@dataclass(frozen=True)
class IncidentEvent:
    incident_id: int
    change: Change
    actor: str = "firebreak"


Subscriber = Callable[[IncidentEvent], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def publish(self, event: IncidentEvent) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:
                log.exception("incident event subscriber failed", incident_id=event.incident_id)
