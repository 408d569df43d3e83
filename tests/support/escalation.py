"""Helpers for the escalation and remediation tests: a recording Notifier (a double for the
Slack component's port) and small readers of the store."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx

from firebreak.app import Component, Runtime
from tests.support.payloads import alert, group


@dataclass
class RecordingNotifier:
    """Implements firebreak.ports.Notifier by recording every call."""

    thread: list[tuple[int, str, str]] = field(default_factory=list)  # (incident, purpose, text)
    dms: list[tuple[str, str]] = field(default_factory=list)
    cards: list[int] = field(default_factory=list)

    def card_changed(self, incident_id: int, *, routine: bool = False) -> None:
        self.cards.append(incident_id)

    def post_in_thread(
        self, incident_id: int, text: str, blocks: list[Any] | None = None, *, purpose: str = "note"
    ) -> None:
        self.thread.append((incident_id, purpose, text))

    def direct_message(self, user_id: str, text: str) -> None:
        self.dms.append((user_id, text))

    def posts(self, purpose: str) -> list[str]:
        return [text for _, p, text in self.thread if p == purpose]


def install_notifier(notifier: RecordingNotifier) -> Component:
    async def component(runtime: Runtime, stack: AsyncExitStack) -> None:
        runtime.notifier = notifier

    return component


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
