"""Bad input at the webhook, on SQLite and PostgreSQL, through the real HTTP endpoint.

The rules (README "Pointing Alertmanager at it"): a NUL character in text Alertmanager copies
from scraped data (label and annotation values, the group key built from them, URLs) is stored
as U+FFFD and the field is named on the timeline, because a refused notification pages nobody;
a NUL in a name or a fingerprint, and a time outside 1970…2200, is a 422 naming the field.
Either way the answer is never a 5xx and a refused notification stores nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from firebreak.config import Secrets
from firebreak.store.models import Alert, Incident, TimelineEvent
from tests.conftest import make_config
from tests.support.app import RunningApp, run_app
from tests.support.payloads import alert, group

WEBHOOK_TOKEN = "wh-s3cr3t-token-value"
API_TOKEN = "api-t0ken-value"
AUTH = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
API = {"Authorization": f"Bearer {API_TOKEN}"}
FFFD = "\ufffd"


@pytest.fixture
async def app(store_url: str) -> AsyncIterator[RunningApp]:
    secrets = Secrets(webhook_token=SecretStr(WEBHOOK_TOKEN), api_token=SecretStr(API_TOKEN))
    async with run_app(make_config(store_url), secrets) as running:
        yield running


async def stored_rows(app: RunningApp) -> tuple[int, ...]:
    async with app.runtime.engine.connect() as conn:
        return tuple(
            [
                await conn.scalar(select(func.count()).select_from(model))
                for model in (Incident, Alert, TimelineEvent)
            ]
        )


async def post(app: RunningApp, payload: dict[str, Any]) -> Any:
    return await app.client.post("/webhooks/alertmanager", json=payload, headers=AUTH)


def with_nul() -> dict[str, Any]:
    """A group whose label and annotation values carry NUL, as a scraped value can."""
    first, second = alert("a"), alert("b")
    first["labels"]["team"] = "pay\x00ments"
    first["annotations"]["description"] = "path /api\x00/x failed"
    second["generatorURL"] += "\x00"
    payload = group('{}:{team="pay\x00ments"}', [first, second])
    payload["commonLabels"]["team"] = "pay\x00ments"
    return payload


async def test_nul_in_values_is_stored_as_a_replacement_and_named(app: RunningApp) -> None:
    answer = await post(app, with_nul())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "stored" and body["alerts_written"] == 2
    repaired = [
        "groupKey",
        "commonLabels.team",
        "commonAnnotations.description",
        "alerts.0.labels.team",
        "alerts.0.annotations.description",
        "alerts.1.generatorURL",
    ]
    assert body["repaired"] == repaired

    incident = await app.client.get(f"/api/v1/incidents/{body['incident_id']}", headers=API)
    shown = incident.json()
    assert shown["labels"]["team"] == f"pay{FFFD}ments"
    assert shown["group_key"] == f'{{}}:{{team="pay{FFFD}ments"}}'
    timeline = await app.client.get(
        f"/api/v1/incidents/{body['incident_id']}/timeline", headers=API
    )
    received = [e for e in timeline.json() if e["type"] == "ALERT_RECEIVED"]
    assert received[0]["data"]["repaired"] == repaired
    assert "NUL replaced by U+FFFD in groupKey, commonLabels.team" in received[0]["message"]

    again = await post(app, with_nul())  # Alertmanager's redelivery changes nothing
    assert again.status_code == 200 and again.json()["alerts_written"] == 0
    assert await stored_rows(app) == (1, 2, 2)
    metrics = (await app.client.get("/metrics")).text
    assert 'firebreak_webhook_repaired_total{problem="nul"} 2.0' in metrics


@pytest.mark.parametrize(
    ("where", "field"),
    [
        (lambda p: p["alerts"][0].update(fingerprint="ab\x00cd"), "alerts.0.fingerprint"),
        (lambda p: p["alerts"][1]["labels"].update({"te\x00am": "x"}), "alerts.1.labels"),
        (lambda p: p["alerts"][0]["annotations"].update({"\x00": "x"}), "alerts.0.annotations"),
        (lambda p: p["commonLabels"].update({"te\x00am": "x"}), "commonLabels"),
    ],
)
async def test_nul_in_a_name_or_fingerprint_is_422_and_stores_nothing(
    app: RunningApp, where: Any, field: str
) -> None:
    payload = group("g1", [alert("a"), alert("b")])
    where(payload)
    answer = await post(app, payload)
    assert answer.status_code == 422, answer.text
    (problem,) = answer.json()["detail"]
    assert problem["field"].startswith(field), problem
    assert "NUL character not allowed" in problem["problem"]
    assert await stored_rows(app) == (0, 0, 0)


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("startsAt", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z is out of range (1970…2200)"),
        ("startsAt", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z is out of range (1970…2200)"),
        ("startsAt", "1969-12-31T23:59:59Z", "1969-12-31T23:59:59Z is out of range (1970…2200)"),
        ("startsAt", "0001-01-01T00:00:00+05:00", "is out of range (1970…2200)"),
        ("endsAt", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z is out of range (1970…2200)"),
        ("endsAt", "2200-01-01T00:00:00Z", "2200-01-01T00:00:00Z is out of range (1970…2200)"),
    ],
)
async def test_a_time_out_of_range_is_422_naming_the_field(
    app: RunningApp, field: str, value: str, said: str
) -> None:
    alerts = [alert("a"), alert("b"), alert("c", status="resolved")]
    alerts[2][field] = value
    answer = await post(app, group("g1", alerts))
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == [
        {"field": f"alerts.2.{field}", "problem": answer.json()["detail"][0]["problem"]}
    ]
    assert said in answer.json()["detail"][0]["problem"]
    assert await stored_rows(app) == (0, 0, 0)


async def test_the_zero_end_of_a_firing_alert_and_times_in_range_are_accepted(
    app: RunningApp,
) -> None:
    alerts = [alert("a"), alert("b")]
    alerts[0]["endsAt"] = "0001-01-01T00:00:00Z"  # Alertmanager's "not ended"
    alerts[1]["startsAt"] = "1970-01-01T00:00:00Z"
    answer = await post(app, group("g1", alerts))
    assert answer.status_code == 200, answer.text
    assert "repaired" not in answer.json()
    assert await stored_rows(app) == (1, 2, 2)
