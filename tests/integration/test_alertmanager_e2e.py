"""A real alert: Prometheus evaluates a rule, Alertmanager posts it, the incident opens and
resolves through the API. Both servers are the Debian packages, on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from firebreak.config import Secrets
from tests.conftest import make_config
from tests.support.app import run_app
from tests.support.promstack import run_alertmanager, run_prometheus, serve_metrics
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

RULES = """
groups:
  - name: checkout
    rules:
      - alert: CheckoutErrors
        expr: checkout_errors_per_second > 1
        labels: {severity: critical, service: checkout}
        annotations: {summary: "checkout is failing requests"}
"""


async def test_alert_fires_and_resolves_through_alertmanager(tmp_path: Path) -> None:
    token = "am-webhook-token"
    config = make_config(f"sqlite+aiosqlite:///{tmp_path / 'fb.db'}")
    async with run_app(config, Secrets(webhook_token=SecretStr(token))) as app:
        with (
            serve_metrics() as exporter,
            run_alertmanager(
                tmp_path, webhook_url=f"{app.url}/webhooks/alertmanager", bearer_token=token
            ) as alertmanager,
            run_prometheus(
                tmp_path,
                scrape_targets=[exporter.target],
                rules=RULES,
                alertmanager_url=alertmanager,
            ),
        ):
            exporter.set("checkout_errors_per_second", 7)

            async def triggered() -> list[dict]:
                incidents = (await app.client.get("/api/v1/incidents")).json()
                return [i for i in incidents if i["status"] == "triggered"]

            (incident,) = await eventually(triggered)
            assert incident["title"] == "CheckoutErrors: checkout is failing requests"
            assert incident["service"] == "checkout" and incident["severity"] == "critical"
            assert incident["alert_count"] == 1

            exporter.set("checkout_errors_per_second", 0)

            async def resolved() -> dict | None:
                shown = (await app.client.get(f"/api/v1/incidents/{incident['id']}")).json()
                return shown if shown["status"] == "resolved" else None

            shown = await eventually(resolved)
            assert shown["resolved_at"] is not None
            assert shown["alerts"][0]["generator_url"].startswith("http")
            timeline = (await app.client.get(f"/api/v1/incidents/{incident['id']}/timeline")).json()
            types = [event["type"] for event in timeline]
            assert types[0] == "INCIDENT_CREATED" and types[-1] == "RESOLVED"
            assert types.count("INCIDENT_CREATED") == 1
