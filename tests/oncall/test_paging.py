"""On call through the running app and the fake Slack: `schedule:` targets resolved when each
step fires, routing of cards, `/incident oncall`, and the handoff greeting."""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any

from tests.fakes.slack_api import FakeSlackApi
from tests.oncall.rig import (
    CHANNEL,
    card,
    card_text,
    command,
    dms,
    events,
    get_json,
    local_start,
    oncall_app,
    open_incident,
    policy,
    schedule,
    wait_dms,
)
from tests.support.app import RunningApp

ON_CALL = "on call for payments-primary"
FAST_SWEEP = {"sweep_interval_s": 0.5}


def laddered_app(
    store_url: str, slack: FakeSlackApi, rotation: dict[str, Any], ladder: dict[str, Any]
) -> AbstractAsyncContextManager[RunningApp]:
    """The app with one schedule and one escalation policy, swept quickly."""
    return oncall_app(
        store_url, slack, schedules=[rotation], escalation={"policies": [ladder], **FAST_SWEEP}
    )


async def test_a_handoff_between_two_steps_pages_the_new_person(store_url: str) -> None:
    # Alice's shift ends 4 s from now; level 1 fires at once, level 2 six seconds later.
    rotation = schedule(local_start(timedelta(seconds=4)), ["U0ALICE", "U0BOB"])
    ladder = policy(
        (["schedule:payments-primary"], 6), (["schedule:payments-primary", "U0LEAD"], 60)
    )
    with FakeSlackApi() as slack:
        async with laddered_app(store_url, slack, rotation, ladder) as app:
            incident_id = await open_incident(app)
            first = (await events(app, incident_id, "ESCALATED"))[0]
            assert first["data"]["targets"] == ["U0ALICE"]
            assert first["data"]["reasons"] == {"U0ALICE": ON_CALL}
            assert first["data"]["schedules"] == {"payments-primary": "U0ALICE"}
            assert first["data"]["notify"] == ["schedule:payments-primary"]
            assert first["message"] == f"Escalation level 1 paged: U0ALICE ({ON_CALL})"

            second = (await events(app, incident_id, "ESCALATED", 2))[1]
            assert second["data"]["targets"] == ["U0BOB", "U0LEAD"]
            assert second["data"]["reasons"] == {"U0BOB": ON_CALL}
            assert second["data"]["schedules"] == {"payments-primary": "U0BOB"}

            channel, ts = await card(app, slack, incident_id)
            text = await card_text(slack, channel, ts, "Paged (level 2)")
            assert f"Paged (level 2): @U0BOB ({ON_CALL}) @U0LEAD" in text
            assert await wait_dms(slack, "U0BOB") and await wait_dms(slack, "U0LEAD")
            assert await app.runtime.outbox.idle(10)  # type: ignore[union-attr]
            thread = [m["text"] for m in slack.thread(channel, ts)]

    assert any(f"*Escalation level 1*: <@U0ALICE> ({ON_CALL})" in t for t in thread), thread
    assert any(f"*Escalation level 2*: <@U0BOB> ({ON_CALL}) <@U0LEAD>" in t for t in thread)
    assert f"(escalation level 1) ({ON_CALL})" in dms(slack, "U0ALICE")[0]
    assert f"(escalation level 2) ({ON_CALL})" in dms(slack, "U0BOB")[0]
    assert "(escalation level 2): " in dms(slack, "U0LEAD")[0]  # no reason: named as it is


async def test_nobody_on_call_is_said_in_the_thread(store_url: str) -> None:
    rotation = schedule("2031-01-01T00:00:00", ["U0ALICE"])  # nobody before the rotation starts
    ladder = policy((["schedule:payments-primary"], 60))
    with FakeSlackApi() as slack:
        async with laddered_app(store_url, slack, rotation, ladder) as app:
            incident_id = await open_incident(app)
            page = (await events(app, incident_id, "ESCALATED"))[0]
            assert page["data"]["targets"] == []
            assert page["data"]["unstaffed"] == ["nobody is on call for payments-primary"]
            assert page["data"]["schedules"] == {"payments-primary": None}
            channel, ts = await card(app, slack, incident_id)
            await card_text(slack, channel, ts, "Paged (level 1): ⚠️ nobody is on call")
            assert await app.runtime.outbox.idle(10)  # type: ignore[union-attr]
            thread = [m["text"] for m in slack.thread(channel, ts)]
    assert any(
        "*Escalation level 1*: Nobody is on call for payments-primary: nobody was paged" in t
        for t in thread
    ), thread
    assert not slack.calls("conversations.open")


async def test_routing_sends_card_thread_and_pages_to_the_team_channel(store_url: str) -> None:
    routing = [{"match": {"service": "checkout"}, "channel": "C0PAYMENTS"}]
    ladder = policy((["U0ALICE"], 60))
    with FakeSlackApi() as slack:
        async with oncall_app(
            store_url,
            slack,
            routing=routing,
            escalation={"policies": [ladder], **FAST_SWEEP},
        ) as app:
            payments = await open_incident(app, "g1", service="checkout")
            search = await open_incident(app, "g2", service="search")
            assert (await card(app, slack, payments))[0] == "C0PAYMENTS"
            assert (await card(app, slack, search))[0] == CHANNEL
            await events(app, payments, "ESCALATED")
            assert await app.runtime.outbox.idle(10)  # type: ignore[union-attr]
            _, ts = await card(app, slack, payments)
            incident = await get_json(app.client, f"/api/v1/incidents/{payments}")

    assert incident["slack"] == {"channel": "C0PAYMENTS", "ts": ts}
    thread = [m["text"] for m in slack.thread("C0PAYMENTS", ts)]
    assert any("*Escalation level 1*: <@U0ALICE>" in t for t in thread), thread
    posted = {c.params["channel"] for c in slack.calls("chat.postMessage", ok=True)}
    assert "C0PAYMENTS" in posted and CHANNEL in posted
    in_default = [m for m in slack.messages(CHANNEL) if m.get("thread_ts") == ts]
    assert in_default == []  # nothing about the payments incident went to slack.channel


async def test_oncall_command_answers_who_until_when_and_who_next(store_url: str) -> None:
    rotation = schedule(local_start(timedelta(minutes=30)), ["U0ALICE", "U0BOB"])
    sre = {"name": "sre", "rotation": {"users": ["U0CAROL"], "start": "2020-01-01T00:00:00"}}
    with FakeSlackApi() as slack:
        async with oncall_app(store_url, slack, schedules=[rotation, sre]) as app:
            every = await command(app, slack, "oncall")
            one = await command(app, slack, "oncall payments-primary")
            unknown = await command(app, slack, "oncall payroll")
            listed = await get_json(app.client, "/api/v1/schedules")
            now = await get_json(app.client, "/api/v1/schedules/payments-primary/oncall")

    assert every.startswith(":telephone_receiver: *On call*")
    assert "*payments-primary*: <@U0ALICE> is on call until <!date^" in every
    assert "next: <@U0BOB> from <!date^" in every
    assert "*sre*: <@U0CAROL> is on call" in every
    assert "sre" not in one and "*payments-primary*: <@U0ALICE>" in one
    assert unknown == ":warning: no schedule 'payroll' (schedules: payments-primary, sre)"
    assert [s["name"] for s in listed] == ["payments-primary", "sre"]
    assert listed[0]["next"]["user"] == "U0BOB" and now["user"] == "U0ALICE"


async def test_the_incoming_person_is_greeted_once_with_the_incidents_paging_them(
    store_url: str,
) -> None:
    """Bob took over two minutes ago, while no replica with `notify_handoff` ran: the next
    start greets him (late, within the grace); a further restart does not greet him again."""
    start = local_start(-timedelta(minutes=2))
    ladders = [
        policy((["schedule:payments-primary"], 600), match={"service": "checkout"}),
        policy((["U0OTHER"], 600), name="others"),
    ]
    sections = {"escalation": {"policies": ladders, **FAST_SWEEP}}
    quiet = [schedule(start, ["U0ALICE", "U0BOB"])]
    greeting = [schedule(start, ["U0ALICE", "U0BOB"], notify_handoff=True)]
    with FakeSlackApi() as slack:
        async with oncall_app(store_url, slack, schedules=quiet, **sections) as app:
            paging = await open_incident(app, "g1", service="checkout")
            other = await open_incident(app, "g2", service="search")
            await events(app, paging, "ESCALATED")
            await events(app, other, "ESCALATED")
            assert await app.runtime.outbox.idle(10)  # type: ignore[union-attr]
        assert len(dms(slack, "U0BOB")) == 1  # the page itself

        async with oncall_app(store_url, slack, schedules=greeting, **sections) as app:
            texts = await wait_dms(slack, "U0BOB", 2)
            assert await app.runtime.outbox.idle(10)  # type: ignore[union-attr]

        async with oncall_app(store_url, slack, schedules=greeting, **sections) as app:
            jobs = await asyncio.to_thread(_handoff_jobs, app)
            now = time.time()
            assert await app.runtime.outbox.idle(10)  # type: ignore[union-attr]

    hello = texts[1]
    assert hello.startswith(":wave: You are now on call for *payments-primary* until <!date^")
    assert f"• #{paging} HighErrorRate: checkout is failing requests (triggered)" in hello
    assert f"#{other}" not in hello
    assert len(jobs) == 1 and int(jobs[0].rsplit(":", 1)[1]) > now  # only Alice's, in 58 min
    assert len(dms(slack, "U0BOB")) == 2
    assert len(dms(slack, "U0ALICE")) == 0


def _handoff_jobs(app: RunningApp) -> list[str]:
    """The `hof` jobs in the elected scheduler's persistent job store."""
    jobstore = app.runtime.scheduler.jobstore
    assert jobstore is not None  # this process is the elected scheduler
    return [job.id for job in jobstore.get_all_jobs() if job.id.startswith("hof:")]
