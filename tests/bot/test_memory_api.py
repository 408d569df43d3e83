"""The incident memory API over real HTTP: related incidents, the postmortem draft, the
statistics (and their 400s), and the time-to-acknowledge / time-to-resolve histograms."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from firebreak.config import Secrets
from tests.conftest import make_config
from tests.support.app import RunningApp, run_app
from tests.support.payloads import alert, group

API_TOKEN = "api-t0ken-value"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
async def app(store_url: str) -> AsyncIterator[RunningApp]:
    config = make_config(store_url, correlation={"labels": ["service"], "window_s": 300})
    async with run_app(config, Secrets(api_token=SecretStr(API_TOKEN))) as running:
        yield running


async def opened(app: RunningApp, key: str, fingerprint: str, **labels: str) -> int:
    response = await app.client.post(
        "/webhooks/alertmanager", json=group(key, [alert(fingerprint, **labels)])
    )
    assert response.status_code == 200, response.text
    return response.json()["incident_id"]


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    assert match, name
    return float(match.group(1))


async def test_stats_and_the_histograms(app: RunningApp) -> None:
    first = await opened(app, "g1", "a")
    second = await opened(app, "g2", "b", service="payments")
    await opened(app, "g3", "c", service="search")
    for path in (f"{first}/acknowledge", f"{first}/resolve", f"{second}/acknowledge"):
        answer = await app.client.post(f"/api/v1/incidents/{path}", json={"by": "U1"}, headers=AUTH)
        assert answer.status_code == 200
    again = await app.client.post(
        f"/api/v1/incidents/{first}/resolve", json={"by": "U1"}, headers=AUTH
    )
    assert again.status_code == 200  # a repeat changes nothing, observes nothing
    cleared = group("g2", [alert("b", service="payments", status="resolved")])
    assert (await app.client.post("/webhooks/alertmanager", json=cleared)).status_code == 200

    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    stats = await app.client.get("/api/v1/stats", params={"since": since}, headers=AUTH)
    assert stats.status_code == 200, stats.text
    body = stats.json()
    assert body["incidents"] == 3
    assert set(body) >= {"incidents", "mtta_s", "mttr_s", "by_service"}
    assert set(body["mtta_s"]) == {"median", "p90"} and body["mtta_s"]["median"] >= 0
    assert body["by_service"]["search"]["mttr_s"] == {"median": None, "p90": None}
    assert body["by_service"]["payments"]["incidents"] == 1
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    later = await app.client.get("/api/v1/stats", params={"since": future}, headers=AUTH)
    assert later.json()["incidents"] == 0

    exposed = (await app.client.get("/metrics")).text
    assert metric(exposed, "firebreak_time_to_acknowledge_seconds_count") == 2
    assert metric(exposed, "firebreak_time_to_resolve_seconds_count") == 2  # U1 + Alertmanager


@pytest.mark.parametrize(
    "since", ["yesterday", "1700000000", "2026-12-01T00:00:00", "2026-13-01T00:00:00Z"]
)
async def test_a_bad_since_is_400(app: RunningApp, since: str) -> None:
    response = await app.client.get("/api/v1/stats", params={"since": since}, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_since"
    assert "RFC 3339" in response.json()["detail"]


async def test_a_spaced_offset_is_read_as_plus(app: RunningApp) -> None:
    response = await app.client.get("/api/v1/stats?since=2026-12-01T00:00:00 01:00", headers=AUTH)
    assert response.status_code == 200 and response.json()["since"] == "2026-12-01T00:00:00+01:00"


@pytest.mark.parametrize("path", ["related", "postmortem"])
async def test_unknown_incident_is_404_and_no_token_401(app: RunningApp, path: str) -> None:
    assert (await app.client.get(f"/api/v1/incidents/999/{path}", headers=AUTH)).status_code == 404
    assert (await app.client.get(f"/api/v1/incidents/x/{path}", headers=AUTH)).status_code == 404
    assert (await app.client.get(f"/api/v1/incidents/1/{path}")).status_code == 401
    assert (await app.client.get("/api/v1/stats")).status_code == 401


async def test_related_names_concurrent_incidents(app: RunningApp) -> None:
    first = await opened(app, "g1", "a")
    second = await opened(app, "g2", "b", alertname="HighLatency")  # same service: correlated
    response = await app.client.get(f"/api/v1/incidents/{second}/related", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert [item["id"] for item in body["concurrent"]] == [first]
    assert body["concurrent"][0]["status"] == "triggered"
    shown = await app.client.get(f"/api/v1/incidents/{first}", headers=AUTH)
    assert shown.json()["related"] == [second]
    page = await app.client.get(f"/incidents/{second}", headers=AUTH)
    assert page.status_code == 200
    related = page.text.split('id="related"', 1)[1].split("</section>", 1)[0]
    assert f'href="/incidents/{first}"' in related and "Concurrent" in related


async def test_postmortem_is_markdown_and_recorded(app: RunningApp) -> None:
    incident_id = await opened(app, "g1", "a")
    response = await app.client.get(f"/api/v1/incidents/{incident_id}/postmortem", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/markdown")
    assert response.text.startswith(f"# Postmortem draft: #{incident_id} HighErrorRate")
    assert "from its template (no LLM is configured)" in response.text
    timeline = await app.client.get(f"/api/v1/incidents/{incident_id}/timeline", headers=AUTH)
    drafted = [e for e in timeline.json() if e["type"] == "POSTMORTEM_DRAFTED"]
    assert [(e["actor"], e["data"]["written_by"]) for e in drafted] == [("api", "template")]
