"""NUL (U+0000) in what Firebreak stores: PostgreSQL refuses it in text and JSON, so the store
keeps U+FFFD in its place on both back ends, and nothing that carries one fails to be stored."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from sqlalchemy import select

from firebreak.store import incidents
from firebreak.store.models import Alert, Incident, TimelineEvent
from firebreak.store.schemas import EventType
from firebreak.store.text import REPLACEMENT, json_dumps, without_nul
from firebreak.store.writer import Writer
from tests.agents.test_graph import STARTS, analysed, config_for, event_types
from tests.conftest import make_config
from tests.support.app import investigating, run_app
from tests.support.payloads import alert, group

NUL = "\x00"


def nul_payload() -> dict:
    """A notification with NUL in every kind of value Alertmanager copies from a scrape (names
    and fingerprints with NUL are refused at the door: tests/bot/test_webhook_bad_input.py)."""
    item = alert("fp1", starts_at=STARTS)
    item["labels"]["pod"] = f"checkout{NUL}7"
    item["annotations"]["summary"] = f"errors{NUL} everywhere"
    item["generatorURL"] += NUL
    payload = group(f'{{}}:{{alertname="x{NUL}"}}', [item])
    payload["receiver"] = f"fire{NUL}break"
    payload["commonAnnotations"] = {"summary": f"errors{NUL} everywhere"}
    return payload


def test_json_dumps_replaces_nul_only_where_there_is_one() -> None:
    assert json_dumps({"a": "b"}) == '{"a": "b"}'
    assert json_dumps({f"k{NUL}": [f"v{NUL}", 1]}) == '{"k\\ufffd": ["v\\ufffd", 1]}'
    assert json_dumps({"path": "C:\\u0000"}) == '{"path": "C:\\\\u0000"}'  # a literal backslash
    assert without_nul(f"a{NUL}b{NUL}") == f"a{REPLACEMENT}b{REPLACEMENT}"


async def test_an_alert_with_nul_is_stored_and_redelivery_is_idempotent(store_url: str) -> None:
    async with run_app(make_config(store_url)) as app:
        first = await app.client.post("/webhooks/alertmanager", json=nul_payload())
        again = await app.client.post("/webhooks/alertmanager", json=nul_payload())
        shown = (await app.client.get(f"/api/v1/incidents/{first.json()['incident_id']}")).json()
        async with app.runtime.engine.connect() as conn:
            stored = (await conn.execute(select(Alert))).one()
            group_key = await conn.scalar(select(Incident.group_key))

    assert first.status_code == 200, first.text
    assert first.json()["alerts_written"] == 1
    assert again.status_code == 200 and again.json()["alerts_written"] == 0
    assert again.json()["incident_id"] == first.json()["incident_id"]
    assert stored.fingerprint == "fp1"
    assert stored.labels["pod"] == f"checkout{REPLACEMENT}7"
    assert stored.annotations["summary"] == f"errors{REPLACEMENT} everywhere"
    assert stored.generator_url.endswith(REPLACEMENT)
    assert group_key == f'{{}}:{{alertname="x{REPLACEMENT}"}}'
    assert shown["labels"]["pod"] == f"checkout{REPLACEMENT}7"


async def test_writes_with_nul_in_text_and_json_commit(writer: Writer, store_url: str) -> None:
    async with run_app(make_config(store_url)) as app:
        response = await app.client.post("/webhooks/alertmanager", json=group("g1", [alert("a")]))
    incident_id = response.json()["incident_id"]
    await writer.run(
        partial(
            incidents.record_event,
            incident_id=incident_id,
            kind=EventType.NOTE,
            actor=f"U{NUL}1",
            message=f"a note{NUL}",
            data={f"k{NUL}": [f"v{NUL}"]},
        )
    )
    with writer.engine.connect() as conn:
        note = conn.execute(
            select(TimelineEvent).where(TimelineEvent.type == EventType.NOTE.value)
        ).one()
    assert (note.actor, note.message) == (f"U{REPLACEMENT}1", f"a note{REPLACEMENT}")
    assert note.data == {f"k{REPLACEMENT}": [f"v{REPLACEMENT}"]}


async def test_an_investigation_of_nul_evidence_completes(store_url: str, tmp_path: Path) -> None:
    """Log lines with NUL flow through the graph's checkpoints, the timeline and the analysis."""
    config = config_for(store_url, tmp_path)
    logs = tmp_path / "checkout.log"
    logs.write_text(logs.read_text().replace("connection refused", f"connection{NUL} refused"))
    async with run_app(config, parts=investigating()) as app:
        response = await app.client.post("/webhooks/alertmanager", json=nul_payload())
        assert response.status_code == 200, response.text
        incident_id = response.json()["incident_id"]
        analysis = (await analysed(app, incident_id))["analysis"]
        types = await event_types(app, incident_id)

    assert analysis["execution_status"] == "COMPLETED"
    assert "AI_ANALYSIS_FAILED" not in types
    assert any(REPLACEMENT in item["text"] for item in analysis["evidence"])
