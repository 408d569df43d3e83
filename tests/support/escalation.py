"""Helpers for the escalation and remediation tests: a recording Notifier (a double for the
Slack component's port) and small readers of the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from firebreak.bot.messages.notices import notice_message, notice_purpose
from firebreak.components import Parts
from tests.support.payloads import alert, group


@dataclass
class RecordingNotifier:
    """Implements incidents.ports.Notifier by recording every call, each notice worded as the
    Slack surface words it (the RCA as its kind only: it is rendered from the store)."""

    thread: list[tuple[int, str, str]] = field(default_factory=list)  # (incident, purpose, text)
    notices: list[tuple[int, Any]] = field(default_factory=list)
    dms: list[tuple[str, str]] = field(default_factory=list)
    cards: list[int] = field(default_factory=list)

    def card_changed(self, incident_id: int, *, routine: bool = False) -> None:
        self.cards.append(incident_id)

    def tell(self, incident_id: int, notice: Any) -> None:
        self.notices.append((incident_id, notice))
        purpose = "remediation" if notice.key else notice_purpose(notice)
        text = notice.kind if notice.kind == "rca" else _words(incident_id, notice)
        self.thread.append((incident_id, purpose, text))

    def tell_user(self, user_id: str, notice: Any) -> None:
        self.dms.append((user_id, _words(notice.incident_id, notice)))

    def posts(self, purpose: str) -> list[str]:
        return [text for _, p, text in self.thread if p == purpose]


def _words(incident_id: int, notice: Any) -> str:
    return notice_message(incident_id, notice, None, None)[0]


def recording(notifier: RecordingNotifier) -> Parts:
    return Parts(notifier=notifier)


async def open_incident(client: httpx.AsyncClient, key: str = "g1", **labels: Any) -> int:
    response = await client.post("/webhooks/alertmanager", json=group(key, [alert("a", **labels)]))
    assert response.status_code == 200, response.text
    incident_id = response.json()["incident_id"]
    assert incident_id is not None
    return int(incident_id)


async def timeline(client: httpx.AsyncClient, incident_id: int, kind: str) -> list[dict]:
    response = await client.get(f"/api/v1/incidents/{incident_id}/timeline")
    assert response.status_code == 200, response.text
    return [event for event in response.json() if event["type"] == kind]


async def pages(client: httpx.AsyncClient, incident_id: int) -> list[tuple[int, int, list[str]]]:
    """ESCALATED events as (level, cycle, targets), oldest first."""
    return [
        (e["data"]["level"], e["data"]["cycle"], e["data"]["targets"])
        for e in await timeline(client, incident_id, "ESCALATED")
    ]
