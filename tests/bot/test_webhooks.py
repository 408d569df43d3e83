"""The Alertmanager webhook and the incident API over real HTTP."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from firebreak.config import Secrets
from firebreak.incidents.events import IncidentEvent
from firebreak.store.models import Alert, Incident, TimelineEvent
from tests.conftest import make_config
from tests.support.app import RunningApp, run_app
from tests.support.payloads import alert, group

WEBHOOK_TOKEN = "wh-s3cr3t-token-value"
API_TOKEN = "api-t0ken-value"
AUTH = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}


@pytest.fixture
async def app(store_url: str) -> AsyncIterator[RunningApp]:
    secrets = Secrets(webhook_token=SecretStr(WEBHOOK_TOKEN), api_token=SecretStr(API_TOKEN))
    async with run_app(make_config(store_url), secrets) as running:
        yield running


async def stored_rows(app: RunningApp) -> tuple[int, int, int]:
    async with app.runtime.engine.connect() as conn:
        return tuple(
            [
                await conn.scalar(select(func.count()).select_from(m))
                for m in (Incident, Alert, TimelineEvent)
            ]
        )


async def test_stores_and_answers_after_commit(app: RunningApp) -> None:
    seen: list[IncidentEvent] = []
    app.runtime.bus.subscribe(seen.append)
    response = await app.client.post(
        "/webhooks/alertmanager", json=group("g1", [alert("a"), alert("b")]), headers=AUTH
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "stored" and body["alerts_written"] == 2
    assert await stored_rows(app) == (1, 2, 2)  # INCIDENT_CREATED + ALERT_RECEIVED
    assert [e.change for e in seen] == ["opened"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {WEBHOOK_TOKEN}"}],
)
async def test_missing_or_wrong_token_is_401(app: RunningApp, headers: dict) -> None:
    response = await app.client.post(
        "/webhooks/alertmanager", json=group("g1", [alert("a")]), headers=headers
    )
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert await stored_rows(app) == (0, 0, 0)


async def test_truncated_json_is_400(app: RunningApp) -> None:
    body = json.dumps(group("g1", [alert("a")]))[:-20]
    response = await app.client.post(
        "/webhooks/alertmanager",
        content=body,
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"
    assert await stored_rows(app) == (0, 0, 0)


async def test_wrong_types_are_422_naming_the_field(app: RunningApp) -> None:
    payload = group("g1", [alert("a"), alert("b")])
    payload["alerts"][1]["startsAt"] = "yesterday-ish"
    response = await app.client.post("/webhooks/alertmanager", json=payload, headers=AUTH)
    assert response.status_code == 422
    fields = [problem["field"] for problem in response.json()["detail"]]
    assert fields == ["alerts.1.startsAt"]
    assert await stored_rows(app) == (0, 0, 0)


async def test_numeric_timestamp_is_422_not_unix_time(app: RunningApp) -> None:
    payload = group("g1", [alert("a")])
    payload["alerts"][0]["startsAt"] = 12345
    response = await app.client.post("/webhooks/alertmanager", json=payload, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "alerts.0.startsAt"
    assert await stored_rows(app) == (0, 0, 0)


async def test_wrong_version_is_422(app: RunningApp) -> None:
    payload = group("g1", [alert("a")]) | {"version": "3"}
    response = await app.client.post("/webhooks/alertmanager", json=payload, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "version"


async def test_oversize_is_413_and_stores_nothing(app: RunningApp) -> None:
    payload = group("g1", [alert("a")])
    payload["commonAnnotations"]["description"] = "x" * (1024 * 1024)
    response = await app.client.post("/webhooks/alertmanager", json=payload, headers=AUTH)
    assert response.status_code == 413
    assert await stored_rows(app) == (0, 0, 0)


async def test_oversize_without_content_length_is_413(app: RunningApp) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 65536  # 1.25 MiB of whitespace, streamed (chunked encoding)

    response = await app.client.post(
        "/webhooks/alertmanager",
        content=chunks(),
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status_code == 413


async def test_unknown_fields_are_ignored(app: RunningApp) -> None:
    payload = group("g1", [alert("a")], notification_reason="new alert", futureField={"x": 1})
    payload["alerts"][0]["somethingNew"] = 42
    response = await app.client.post("/webhooks/alertmanager", json=payload, headers=AUTH)
    assert response.status_code == 200
    assert await stored_rows(app) == (1, 1, 2)


async def test_empty_alerts_is_accepted_as_noop(app: RunningApp) -> None:
    response = await app.client.post(
        "/webhooks/alertmanager", json=group("g1", [], status="firing"), headers=AUTH
    )
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert await stored_rows(app) == (0, 0, 0)


async def test_token_never_logged(
    app: RunningApp, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    await app.client.post(
        "/webhooks/alertmanager",
        json=group("g1", [alert("a")]),
        headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}x"},
    )
    await app.client.post("/webhooks/alertmanager", json=group("g1", [alert("a")]), headers=AUTH)
    captured = capsys.readouterr()
    assert WEBHOOK_TOKEN not in caplog.text + captured.out + captured.err
    logged = caplog.text + captured.out + captured.err
    assert "webhook rejected" in logged and "unauthorized" in logged  # the wrong token is seen


async def test_api_lists_filters_and_shows_incidents(app: RunningApp) -> None:
    api = {"Authorization": f"Bearer {API_TOKEN}"}
    one = (
        await app.client.post(
            "/webhooks/alertmanager", json=group("g1", [alert("a"), alert("b")]), headers=AUTH
        )
    ).json()
    await app.client.post("/webhooks/alertmanager", json=group("g2", [alert("c")]), headers=AUTH)
    await app.client.post(
        "/webhooks/alertmanager", json=group("g2", [alert("c", status="resolved")]), headers=AUTH
    )

    listed = (await app.client.get("/api/v1/incidents", headers=api)).json()
    assert len(listed) == 2
    resolved = (await app.client.get("/api/v1/incidents?status=resolved", headers=api)).json()
    assert [i["status"] for i in resolved] == ["resolved"]

    shown = (await app.client.get(f"/api/v1/incidents/{one['incident_id']}", headers=api)).json()
    for key in (
        "id",
        "title",
        "status",
        "severity",
        "service",
        "labels",
        "created_at",
        "acknowledged_at",
        "resolved_at",
        "alert_count",
        "escalation_level",
        "slack",
        "analysis",
    ):
        assert key in shown
    assert shown["alert_count"] == 2 and shown["status"] == "triggered"
    assert shown["slack"] == {"channel": None, "ts": None}

    timeline = (
        await app.client.get(f"/api/v1/incidents/{one['incident_id']}/timeline", headers=api)
    ).json()
    assert [e["type"] for e in timeline] == ["INCIDENT_CREATED", "ALERT_RECEIVED"]
    assert set(timeline[0]) >= {"at", "type", "actor", "message", "data"}
    assert timeline[0]["actor"] == "alertmanager"


@pytest.mark.parametrize(
    "path",
    ["/api/v1/incidents/424242", "/api/v1/incidents/abc", "/api/v1/incidents/424242/timeline"],
)
async def test_api_unknown_incident_is_404(app: RunningApp, path: str) -> None:
    response = await app.client.get(path, headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert response.status_code == 404 and response.json()["error"] == "not_found"


async def test_api_bad_status_is_400_and_token_required(app: RunningApp) -> None:
    api = {"Authorization": f"Bearer {API_TOKEN}"}
    assert (await app.client.get("/api/v1/incidents?status=open", headers=api)).status_code == 400
    assert (await app.client.get("/api/v1/incidents")).status_code == 401


async def test_unknown_paths_and_methods_answer_json(app: RunningApp) -> None:
    missing = await app.client.get("/api/v2/incidents")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = await app.client.get("/webhooks/alertmanager")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"


async def test_health_readiness_and_metrics(app: RunningApp) -> None:
    await app.client.post("/webhooks/alertmanager", json=group("g1", [alert("a")]), headers=AUTH)
    assert (await app.client.get("/healthz")).json() == {"status": "ok"}
    ready = await app.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["store"] == "ok"
    text = (await app.client.get("/metrics")).text
    assert 'firebreak_alerts_received_total{status="firing"} 1.0' in text
    assert "firebreak_incidents_opened_total 1.0" in text
    assert "firebreak_webhook_latency_seconds_count 1.0" in text
