"""Grafana-managed alerts on `/webhooks/alertmanager`: Grafana's webhook contact point sends
Alertmanager's fields with `version` "1" and some of its own; they open, count and resolve an
incident exactly as Alertmanager's do."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from firebreak.config import Secrets
from tests.conftest import make_config
from tests.support.app import RunningApp, run_app
from tests.support.payloads import alert, grafana_alert, grafana_group, group

WEBHOOK_TOKEN = "wh-grafana-token-value"
API_TOKEN = "api-grafana-token-value"
AUTH = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
API = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
async def app(store_url: str) -> AsyncIterator[RunningApp]:
    secrets = Secrets(webhook_token=SecretStr(WEBHOOK_TOKEN), api_token=SecretStr(API_TOKEN))
    async with run_app(make_config(store_url), secrets) as running:
        yield running


async def test_grafana_alerts_open_and_resolve_an_incident(app: RunningApp) -> None:
    firing = grafana_group([grafana_alert("c6eadffa33fcdf37"), grafana_alert("bc97ff14869b13e3")])
    response = await app.client.post("/webhooks/alertmanager", json=firing, headers=AUTH)
    assert response.status_code == 200, response.text
    stored = response.json()
    assert stored["status"] == "stored" and stored["alerts_written"] == 2

    path = f"/api/v1/incidents/{stored['incident_id']}"
    incident = (await app.client.get(path, headers=API)).json()
    assert incident["status"] == "triggered"
    assert incident["service"] == "checkout"
    assert incident["alert_count"] == 2
    assert "High memory usage" in incident["title"]

    ended = "2026-11-22T11:20:03.157076+01:00"
    resolved = grafana_group(
        [
            grafana_alert("c6eadffa33fcdf37", status="resolved", ends_at=ended),
            grafana_alert("bc97ff14869b13e3", status="resolved", ends_at=ended),
        ],
        status="resolved",
    )
    response = await app.client.post("/webhooks/alertmanager", json=resolved, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["incident_id"] == stored["incident_id"]
    incident = (await app.client.get(path, headers=API)).json()
    assert incident["status"] == "resolved"


async def test_grafana_redelivery_is_harmless(app: RunningApp) -> None:
    firing = grafana_group([grafana_alert("c6eadffa33fcdf37")])
    first = (await app.client.post("/webhooks/alertmanager", json=firing, headers=AUTH)).json()
    again = (await app.client.post("/webhooks/alertmanager", json=firing, headers=AUTH)).json()
    assert again["incident_id"] == first["incident_id"]
    listed = (await app.client.get("/api/v1/incidents", headers=API)).json()
    assert len(listed) == 1 and listed[0]["alert_count"] == 1


async def test_other_versions_are_refused_naming_both_formats(app: RunningApp) -> None:
    payload = group("g1", [alert("a")]) | {"version": "2"}
    response = await app.client.post("/webhooks/alertmanager", json=payload, headers=AUTH)
    assert response.status_code == 422
    problem = response.json()["detail"][0]
    assert problem["field"] == "version"
    assert "Grafana" in problem["problem"] and "Grafana alerting" in problem["problem"]
    assert "version 4" in problem["problem"]
