"""`POST /api/v1/incidents/{id}/feedback` over real HTTP, on SQLite and PostgreSQL: the same
flow as the RCA reply's Correct / Wrong (the reply in Slack follows), the write API's rules for
bad input, 409 when there is nothing (or no longer that) to judge."""

from __future__ import annotations

from typing import Any

import pytest

from firebreak.bot.console import render_text
from firebreak.store.schemas import EventType, TimelineEventOut
from tests.bot.slack_harness import CHANNEL, SlackRig
from tests.bot.test_write_api import API_TOKEN, AUTH, api_rig, post

RUN = "inv-1-0123456789ab"


def feedback_of(events: list[TimelineEventOut]) -> list[TimelineEventOut]:
    return [e for e in events if e.type == EventType.FEEDBACK]


async def judge(rig: SlackRig, incident_id: int | str, body: Any, **kwargs: Any) -> Any:
    return await post(rig, f"{incident_id}/feedback", body, **kwargs)


async def test_verdicts_answer_the_incident_and_the_reply_follows(store_url: str) -> None:
    async with api_rig(store_url) as rig:
        incident_id = await rig.alert("g1", "a")
        reply_ts = await rig.publish_analysis(incident_id, RUN)

        first = await judge(rig, incident_id, {"by": "alice", "verdict": "correct"})
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["id"] == incident_id
        said = body["analysis"]["feedback"]
        assert (said["verdict"], said["by"], said["actual_cause"]) == ("correct", "alice", None)
        assert said["at"] and body["analysis"]["run_id"] == RUN
        assert (
            await rig.client.get(f"/api/v1/incidents/{incident_id}", headers=AUTH)
        ).json() == body

        again = await judge(rig, incident_id, {"by": "alice", "verdict": "correct"})
        assert again.status_code == 200 and again.json() == body  # nothing changed

        cause = "  The payments DB pool was exhausted  "
        wrong = await judge(
            rig, incident_id, {"by": "bob", "verdict": "wrong", "actual_cause": cause}
        )
        assert wrong.status_code == 200
        latest = wrong.json()["analysis"]["feedback"]
        assert (latest["verdict"], latest["by"], latest["actual_cause"]) == (
            "wrong",
            "bob",
            "The payments DB pool was exhausted",
        )
        events = feedback_of(await rig.timeline(incident_id))
        assert [(e.actor, e.data["verdict"]) for e in events] == [
            ("alice", "correct"),
            ("bob", "wrong"),
        ]

        shown = await rig.wait(
            lambda: "Marked wrong by bob" in (text := reply_text(rig, reply_ts)) and text
        )
        assert "Actual cause: _The payments DB pool was exhausted_" in shown


def reply_text(rig: SlackRig, ts: str) -> str:
    return render_text(rig.slack.message(CHANNEL, ts).get("blocks") or [])


async def test_no_analysis_yet_is_409_and_a_replaced_run_too(store_url: str) -> None:
    async with api_rig(store_url) as rig:
        incident_id = await rig.alert("g1", "a")
        none_yet = await judge(rig, incident_id, {"by": "alice", "verdict": "correct"})
        assert none_yet.status_code == 409
        assert none_yet.json() == {
            "error": "no_analysis",
            "detail": f"incident {incident_id} has no analysis to judge yet",
        }

        await rig.publish_analysis(incident_id, RUN)
        await rig.publish_analysis(incident_id, "inv-1-fedcba987654", "The DB pool")
        stale = await judge(rig, incident_id, {"by": "alice", "verdict": "correct", "run_id": RUN})
        assert stale.status_code == 409 and stale.json()["error"] == "superseded"
        assert feedback_of(await rig.timeline(incident_id)) == []

        named = {"by": "alice", "verdict": "correct", "run_id": "inv-1-fedcba987654"}
        assert (await judge(rig, incident_id, named)).status_code == 200
        latest = await judge(rig, incident_id, {"by": "bob", "verdict": "correct"})
        assert latest.json()["analysis"]["feedback"]["by"] == "bob"  # no run_id: the latest


async def test_bad_bodies_are_400_or_422_and_change_nothing(store_url: str) -> None:
    async with api_rig(store_url) as rig:
        incident_id = await rig.alert("g1", "a")
        await rig.publish_analysis(incident_id, RUN)
        before = await rig.timeline(incident_id)
        for raw in (b"", b"{verdict: wrong}", b'{"by": "alice"'):
            answer = await judge(rig, incident_id, None, content=raw)
            assert answer.status_code == 400 and answer.json()["error"] == "invalid_json"
        for wrong, field in (
            ({"by": "alice", "verdict": "wrong"}, "actual_cause"),
            ({"by": "alice", "verdict": "wrong", "actual_cause": None}, "actual_cause"),
            ({"by": "alice", "verdict": "wrong", "actual_cause": "   "}, "actual_cause"),
            ({"by": "alice", "verdict": "wrong", "actual_cause": "x" * 2001}, "actual_cause"),
            ({"by": "alice", "verdict": "correct", "actual_cause": ""}, "actual_cause"),
            ({"by": "alice", "verdict": "maybe"}, "verdict"),
            ({"by": "alice", "verdict": "WRONG", "actual_cause": "x"}, "verdict"),
            ({"by": "alice"}, "verdict"),
            ({"verdict": "correct"}, "by"),
            ({"by": "x" * 65, "verdict": "correct"}, "by"),
            ({"by": "alice", "verdict": "correct", "run_id": ""}, "run_id"),
            ({"by": "alice", "verdict": "correct", "score": 5}, "score"),
            ([], ""),
        ):
            answer = await judge(rig, incident_id, wrong)
            assert answer.status_code == 422, wrong
            assert answer.json()["error"] == "invalid_payload"
            assert answer.json()["detail"][0]["field"] == field, (wrong, answer.json())
        huge = b'{"by": "alice", "verdict": "wrong", "actual_cause": "' + b"x" * (1 << 20) + b'"}'
        assert (await judge(rig, incident_id, None, content=huge)).status_code == 413
        assert await rig.timeline(incident_id) == before
        shown = (await rig.client.get(f"/api/v1/incidents/{incident_id}", headers=AUTH)).json()
        assert shown["analysis"]["feedback"] is None


@pytest.mark.parametrize("incident", ["999", "abc", "9" * 30])
async def test_unknown_incidents_are_404(store_url: str, incident: str) -> None:
    async with api_rig(store_url) as rig:
        answer = await judge(rig, incident, {"by": "alice", "verdict": "correct"})
        assert answer.status_code == 404
        assert answer.json() == {"error": "not_found", "detail": f"no incident {incident}"}


async def test_no_or_wrong_token_is_401_and_changes_nothing(store_url: str) -> None:
    async with api_rig(store_url) as rig:
        incident_id = await rig.alert("g1", "a")
        await rig.publish_analysis(incident_id, RUN)
        body = {"by": "alice", "verdict": "correct"}
        for headers in (
            {"Authorization": ""},
            {"Authorization": "Bearer no"},
            {"Authorization": f"Basic {API_TOKEN}"},
        ):
            answer = await judge(rig, incident_id, body, headers=headers)
            assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"
        assert feedback_of(await rig.timeline(incident_id)) == []
