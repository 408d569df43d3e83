"""The write API over real HTTP: the real app on uvicorn, the real Slack component against the
fake Slack Web API, and the incident actions the Slack buttons use (`IncidentOps`).
Escalations and investigations are the other components' doubles, as in the Slack tests
(the real escalation where a test says so)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from firebreak.bot.slack_app import SlackOptions
from firebreak.components import Parts
from firebreak.config import Secrets
from firebreak.store.schemas import EventType, TimelineEventOut
from tests.bot.slack_harness import (
    CHANNEL,
    FAST,
    FakeEscalations,
    FakeInvestigations,
    SlackRig,
)
from tests.conftest import make_config
from tests.fakes.slack_api import DEFAULT_TOKEN, FakeSlackApi
from tests.support.app import run_app
from tests.support.slack_signing import SIGNING_SECRET

API_TOKEN = "api-token-0123456789"
WEBHOOK_TOKEN = "hook-token-0123456789"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@asynccontextmanager
async def api_rig(
    store_url: str, *, with_escalations: bool = True, **sections: Any
) -> AsyncIterator[SlackRig]:
    async with AsyncExitStack() as stack:
        slack = stack.enter_context(FakeSlackApi())
        escalations = FakeEscalations() if with_escalations else None
        investigations = FakeInvestigations()
        stack.callback(investigations.cancel)
        parts = Parts(
            slack=SlackOptions(outbox=FAST),
            investigations=investigations,
            escalations=escalations,
        )
        config = make_config(
            store_url,
            slack={"mode": "http", "api_base_url": slack.base_url, "channel": CHANNEL},
            **sections,
        )
        secrets_ = {
            "slack_bot_token": SecretStr(DEFAULT_TOKEN),
            "slack_signing_secret": SecretStr(SIGNING_SECRET),
            "api_token": SecretStr(API_TOKEN),
            "webhook_token": SecretStr(WEBHOOK_TOKEN),
        }
        app = await stack.enter_async_context(run_app(config, Secrets(**secrets_), parts))
        app.client.headers["Authorization"] = f"Bearer {WEBHOOK_TOKEN}"
        yield SlackRig(app, slack, investigations, escalations)


async def post(rig: SlackRig, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
    headers = {**AUTH, **kwargs.pop("headers", {})}
    if body is not None:
        kwargs["json"] = body
    return await rig.client.post(f"/api/v1/incidents/{path}", headers=headers, **kwargs)


def of_type(events: list[TimelineEventOut], kind: EventType) -> list[TimelineEventOut]:
    return [e for e in events if e.type == kind]


async def test_acknowledge_is_the_buttons_acknowledge_and_idempotent(store_url: str) -> None:
    async with api_rig(store_url) as rig:
        incident_id = await rig.alert("g1", "a")
        ts = await rig.card_ts(incident_id)
        first = await post(rig, f"{incident_id}/acknowledge", {"by": "alice"})
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["id"] == incident_id and body["status"] == "acknowledged"
        assert body["acknowledged_by"] == "alice" and body["acknowledged_at"]
        assert body["slack"] == {"channel": CHANNEL, "ts": ts}

        again = await post(rig, f"{incident_id}/acknowledge", {"by": "U0BOB"})
        assert again.status_code == 200 and again.json() == body  # nothing changed

        events = await rig.timeline(incident_id)
        [ack] = of_type(events, EventType.ACKNOWLEDGED)
        assert ack.actor == "alice" and ack.message == "Acknowledged by alice"
        await rig.card_text(ts, "Status: 👀 Acknowledged")  # the card follows, as for a click


async def test_resolve_then_repeat(store_url: str) -> None:
    async with api_rig(store_url) as rig:
        incident_id = await rig.alert("g1", "a")
        ts = await rig.card_ts(incident_id)
        resolved = await post(rig, f"{incident_id}/resolve", {"by": "U0CAROL"})
        assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
        assert resolved.json()["resolved_at"]
        again = await post(rig, f"{incident_id}/resolve", {"by": "U0CAROL"})
        assert again.status_code == 200 and again.json() == resolved.json()
        ack_after = await post(rig, f"{incident_id}/acknowledge", {"by": "U0BOB"})
        assert ack_after.status_code == 200 and ack_after.json()["status"] == "resolved"
        events = await rig.timeline(incident_id)
        assert [e.actor for e in of_type(events, EventType.RESOLVED)] == ["U0CAROL"]
        assert of_type(events, EventType.ACKNOWLEDGED) == []
        await rig.card_text(ts, "Status: ✅ Resolved")


async def test_escalate_pages_through_the_escalation_component(store_url: str) -> None:
    async with api_rig(store_url) as rig:
        incident_id = await rig.alert("g1", "a")
        answer = await post(rig, f"{incident_id}/escalate", {"by": "U0BOB"})
        assert answer.status_code == 200 and answer.json()["id"] == incident_id
        assert rig.escalations is not None and rig.escalations.calls == [(incident_id, "U0BOB")]
        await post(rig, f"{incident_id}/resolve", {"by": "U0BOB"})
        after = await post(rig, f"{incident_id}/escalate", {"by": "U0BOB"})
        assert after.status_code == 200  # resolved: nothing to page, nothing paged
        assert len(rig.escalations.calls) == 1


async def test_escalate_with_no_policy_is_409_and_pages_nobody(store_url: str) -> None:
    """The real escalation component, no policy configured: 409 naming why, nothing changes."""
    async with api_rig(store_url, with_escalations=False) as rig:
        incident_id = await rig.alert("g1", "a")
        answer = await post(rig, f"{incident_id}/escalate", {"by": "U0BOB"})
        assert answer.status_code == 409, answer.text
        assert answer.json()["error"] == "no_policy"
        assert f"no escalation policy matches incident {incident_id}" in answer.json()["detail"]
        incident = await rig.client.get(f"/api/v1/incidents/{incident_id}", headers=AUTH)
        assert incident.json()["escalation_level"] == 0
        assert of_type(await rig.timeline(incident_id), EventType.ESCALATED) == []


async def test_a_paged_channel_gets_a_post_with_here(store_url: str) -> None:
    """A channel target notifies: the page is posted in that channel with `<!here>`, beside
    the thread's page (where `<#C…>` only links to it)."""
    policy = {"name": "default", "levels": [{"notify": ["C0SRE"], "timeout_s": 600}]}
    async with api_rig(store_url, with_escalations=False, escalation={"policies": [policy]}) as rig:
        incident_id = await rig.alert("g1", "a")

        def channel_pages() -> list[dict[str, Any]]:
            return [m for m in rig.slack.messages("C0SRE") if "<!here>" in m.get("text", "")]

        [page] = await rig.wait(channel_pages)
        assert f"Incident #{incident_id} pages this channel (escalation level 1)" in page["text"]
        assert not page.get("thread_ts")


async def test_notes_name_their_author(store_url: str) -> None:
    async with api_rig(store_url) as rig:
        incident_id = await rig.alert("g1", "a")
        text = "Rolled back checkout to v2.4.0"
        answer = await post(rig, f"{incident_id}/notes", {"by": "  dana  ", "text": text})
        assert answer.status_code == 200 and answer.json()["status"] == "triggered"
        [note] = of_type(await rig.timeline(incident_id), EventType.NOTE)
        assert (note.actor, note.message) == ("dana", text)


@pytest.mark.parametrize("action", ["acknowledge", "escalate", "resolve", "notes"])
async def test_unknown_incidents_are_404(store_url: str, action: str) -> None:
    body = {"by": "U0BOB", "text": "x"} if action == "notes" else {"by": "U0BOB"}
    async with api_rig(store_url) as rig:
        for incident in ("999", "abc", "9" * 30):
            answer = await post(rig, f"{incident}/{action}", body)
            assert answer.status_code == 404, (incident, answer.text)
            assert answer.json() == {"error": "not_found", "detail": f"no incident {incident}"}


async def test_bad_bodies_are_400_or_422_and_change_nothing(store_url: str) -> None:
    async with api_rig(store_url) as rig:
        incident_id = await rig.alert("g1", "a")
        before = await rig.timeline(incident_id)
        path = f"{incident_id}/acknowledge"
        for raw in (b"", b"{by: alice}", b'{"by": "alice"'):
            answer = await post(rig, path, content=raw)
            assert answer.status_code == 400, raw
            assert answer.json()["error"] == "invalid_json"
        for wrong, field in (
            ({}, "by"),
            ({"by": ""}, "by"),
            ({"by": "   "}, "by"),
            ({"by": 7}, "by"),
            ({"by": "x" * 65}, "by"),
            ({"by": "ali\nce"}, "by"),
            ({"by": "alice", "as": "admin"}, "as"),
            ([], ""),
        ):
            answer = await post(rig, path, wrong)
            assert answer.status_code == 422, wrong
            assert answer.json()["error"] == "invalid_payload"
            assert answer.json()["detail"][0]["field"] == field, answer.json()
        note = await post(rig, f"{incident_id}/notes", {"by": "alice"})
        assert note.status_code == 422 and note.json()["detail"][0]["field"] == "text"
        too_big = await post(rig, path, content=b'{"by": "' + b"x" * (1024 * 1024) + b'"}')
        assert too_big.status_code == 413
        assert await rig.timeline(incident_id) == before


async def test_nul_in_a_body_is_422_naming_the_field_and_changes_nothing(store_url: str) -> None:
    """A person's words are not rewritten: NUL (which PostgreSQL cannot store) is refused with
    the field named, on both stores, and nothing is written."""
    async with api_rig(store_url) as rig:
        incident_id = await rig.alert("g1", "a")
        before = await rig.timeline(incident_id)
        for path, body, field in (
            ("notes", {"by": "alice", "text": "rolled back\x00 v2.4.1"}, "text"),
            ("notes", {"by": "ali\x00ce", "text": "rolled back"}, "by"),
            (
                "feedback",
                {"by": "bob", "verdict": "wrong", "actual_cause": "d\x00isk"},
                "actual_cause",
            ),
            ("feedback", {"by": "bob", "verdict": "correct", "run_id": "r\x001"}, "run_id"),
        ):
            answer = await post(rig, f"{incident_id}/{path}", body)
            assert answer.status_code == 422, (body, answer.text)
            problem = answer.json()["detail"][0]
            assert problem["field"] == field, answer.json()
            if field != "by":  # `by` refuses every control character, NUL among them
                assert problem["problem"] == "NUL character not allowed"
        assert await rig.timeline(incident_id) == before


async def test_every_401_names_the_bearer_scheme(store_url: str) -> None:
    async with api_rig(store_url) as rig:
        incident_id = await rig.alert("g1", "a")
        answers = [
            await post(
                rig, f"{incident_id}/acknowledge", {"by": "x"}, headers={"Authorization": ""}
            ),
            await post(
                rig, f"{incident_id}/resolve", {"by": "x"}, headers={"Authorization": "Bearer no"}
            ),
            await post(
                rig,
                f"{incident_id}/notes",
                {"by": "x", "text": "y"},
                headers={"Authorization": f"Basic {API_TOKEN}"},
            ),
            await rig.client.get("/api/v1/incidents", headers={"Authorization": "Bearer no"}),
            await rig.client.get(f"/api/v1/incidents/{incident_id}/timeline", headers={}),
            await rig.client.post(
                "/webhooks/alertmanager", json={}, headers={"Authorization": "Bearer no"}
            ),
        ]
        for answer in answers:
            assert answer.status_code == 401, answer.request.url
            assert answer.headers["WWW-Authenticate"] == "Bearer"
            assert answer.json() == {
                "error": "unauthorized",
                "detail": "missing or wrong bearer token",
            }
        events = await rig.timeline(incident_id)
        assert of_type(events, EventType.ACKNOWLEDGED) == of_type(events, EventType.NOTE) == []


ACCESS = {"access": {"responders": ["U0ALICE", "S0SRE"]}}


async def test_with_access_by_must_be_a_responder(store_url: str) -> None:
    """The API token acts as `by`: with `access` configured, `by` must be a responder of the
    incident, as a click in Slack must; a refusal is 403 and changes nothing."""
    async with api_rig(store_url, **ACCESS) as rig:
        rig.slack.add_usergroup("S0SRE", ["U0CAROL"])
        incident_id = await rig.alert("g1", "a")
        await rig.card_ts(incident_id)
        before = await rig.timeline(incident_id)
        refused = [
            await post(rig, f"{incident_id}/{path}", body)
            for path, body in (
                ("acknowledge", {"by": "U0MALLORY"}),
                ("escalate", {"by": "mallory"}),
                ("resolve", {"by": "U0MALLORY"}),
                ("notes", {"by": "U0MALLORY", "text": "hi"}),
                ("feedback", {"by": "U0MALLORY", "verdict": "correct"}),
            )
        ]
        after = await rig.timeline(incident_id)
        by_group = await post(rig, f"{incident_id}/acknowledge", {"by": "U0CAROL"})
        by_user = await post(rig, f"{incident_id}/resolve", {"by": "U0ALICE"})

    for answer in refused:
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"] == "forbidden"
        assert f"only responders of incident #{incident_id}" in answer.json()["detail"]
    assert after == before
    assert rig.escalations is not None and rig.escalations.calls == []
    assert by_group.status_code == 200 and by_group.json()["acknowledged_by"] == "U0CAROL"
    assert by_user.status_code == 200 and by_user.json()["status"] == "resolved"
