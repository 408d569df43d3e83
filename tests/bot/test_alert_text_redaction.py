"""The alert's own text (title, summary, description, other annotations, the generator URL, and
label values as shown) never reaches a reader in clear: the card, the RCA card, the page, the
API, the timeline and the postmortem. Labels stay stored as they came: grouping, routing and
silences match them."""

from __future__ import annotations

from firebreak.bot.console import render_text
from firebreak.incidents.silences import group_labels
from firebreak.store import incidents
from tests.bot.slack_harness import CHANNEL, slack_rig
from tests.support.payloads import alert, group

SECRETS = ("S3cr3t/Pa55", "hunter2x", "hunter2y", "tok3n-abcdef123456", "gen-q9z8y7x6w5")
GROUP_KEY = '{}:{alertname="DbDown", dbpass="hunter2y"}'


def leaky_payload() -> dict[str, object]:
    raw = alert("fp1", alertname="DbDown", service="orders")
    raw["labels"]["dbpass"] = "hunter2y"
    raw["annotations"] = {
        "summary": "orders cannot reach postgres://app:S3cr3t/Pa55@db:5432/orders",
        "description": "pool config: DB_PASS=hunter2x, size=10",
        "runbook_token": "tok3n-abcdef123456",
    }
    raw["generatorURL"] = "http://prometheus:9090/graph?g0.expr=up&token=gen-q9z8y7x6w5"
    payload = group(GROUP_KEY, [raw])
    payload["groupLabels"] = {"alertname": "DbDown", "dbpass": "hunter2y"}
    return payload


def assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret} in the {where}:\n{text}"


async def test_the_alerts_text_is_scrubbed_on_every_surface(store_url: str) -> None:
    async with slack_rig(store_url) as rig:
        response = await rig.client.post("/webhooks/alertmanager", json=leaky_payload())
        assert response.status_code == 200, response.text
        incident_id = response.json()["incident_id"]
        ts = await rig.card_ts(incident_id)
        card = await rig.card_text(ts, "DbDown")
        assert_clean(card, "card")
        assert "postgres://app:[REDACTED]@db:5432/orders" in card

        rca_ts = await rig.publish_analysis(incident_id, "run-1", root_cause="The pool broke")
        rca = render_text(rig.slack.message(CHANNEL, rca_ts).get("blocks") or [])
        assert_clean(rca, "RCA card")

        api = (await rig.client.get(f"/api/v1/incidents/{incident_id}")).json()
        assert_clean(str(api), "API")
        assert api["labels"]["dbpass"] == "[REDACTED]"
        timeline = (await rig.client.get(f"/api/v1/incidents/{incident_id}/timeline")).text
        assert_clean(timeline, "timeline")
        page = (await rig.client.get(f"/incidents/{incident_id}")).text
        assert_clean(page, "page")
        assert "DbDown" in page
        listing = (await rig.client.get("/incidents")).text + str(
            (await rig.client.get("/api/v1/incidents")).json()
        )
        assert_clean(listing, "lists")
        postmortem = await rig.client.get(f"/api/v1/incidents/{incident_id}/postmortem")
        assert postmortem.status_code == 200
        assert_clean(postmortem.text, "postmortem")

        async with rig.runtime.engine.connect() as conn:
            stored = await incidents.get_incident(conn, incident_id)
        assert stored is not None
        assert_clean(stored.title + str(stored.alerts[0].annotations), "stored title")
        assert "tok3n" not in stored.alerts[0].generator_url + str(stored.alerts[0].annotations)
        # what escalation pages (the DM) and similar-incident search read: the stored title
        assert stored.title.startswith("DbDown: orders cannot reach postgres://app:[REDACTED]@")
        # identity is kept: a silence matches the labels exactly as Alertmanager sent them
        assert stored.labels["dbpass"] == "hunter2y" and stored.group_key == GROUP_KEY
        assert group_labels(stored.group_key, stored.labels)["dbpass"] == "hunter2y"


async def test_a_huge_annotation_is_cut_and_marked_before_it_is_scrubbed(store_url: str) -> None:
    payload = leaky_payload()
    payload["alerts"][0]["annotations"]["description"] = "a." * 500_000  # type: ignore[index]
    async with slack_rig(store_url) as rig:
        response = await rig.client.post("/webhooks/alertmanager", json=payload)
        assert response.status_code == 200, response.text
        async with rig.runtime.engine.connect() as conn:
            stored = await incidents.get_incident(conn, response.json()["incident_id"])
        assert stored is not None
        description = stored.alerts[0].annotations["description"]
        assert description.endswith("…") and len(description) <= 4000


async def test_a_declared_title_and_a_note_are_scrubbed_as_they_come_in(store_url: str) -> None:
    async with slack_rig(store_url) as rig:
        incident_id = await rig.runtime.incidents.declare(
            rig.runtime.incidents.clean("db down, DB_PASS=hunter2x"), "U0BOB"
        )
        await rig.runtime.incidents.add_note(incident_id, "U0BOB", "tried password=hunter2y")
        assert_clean(str(await rig.timeline(incident_id)), "timeline")
        async with rig.runtime.engine.connect() as conn:
            stored = await incidents.get_incident(conn, incident_id)
        assert stored is not None and stored.title == "db down, DB_PASS=[REDACTED]"
