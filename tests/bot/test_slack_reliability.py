"""Signatures, Slack retries, rate limits, outages and restarts."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import select

from firebreak.bot.console import render_text
from firebreak.bot.messages.incident import ACTION_RESOLVE
from firebreak.bot.slack_app import SlackOptions, SlackSetupError
from firebreak.bot.slack_outbox import OutboxSettings
from firebreak.components import Parts, QuietNotifier, assembled
from firebreak.config import Secrets
from firebreak.store.models import SlackOutbox
from firebreak.store.schemas import EventType
from tests.bot.slack_harness import (
    CHANNEL,
    FAST,
    FakeInvestigations,
    slack_rig,
    slack_secrets,
)
from tests.conftest import make_config
from tests.fakes.slack_api import FakeSlackApi
from tests.support.app import run_app
from tests.support.payloads import alert, group
from tests.support.slack_signing import (
    app_mention,
    block_actions,
    slash_command,
    url_verification,
)

# ---------------------------------------------------------------------- signatures


@pytest.mark.parametrize("bad", ["forge", "stale"])
async def test_forged_and_stale_requests_are_refused(store_url: str, bad: str) -> None:
    investigations = FakeInvestigations()
    async with slack_rig(store_url, investigations=investigations) as rig:
        incident_id = await rig.alert("g1", "a")
        ts = await rig.card_ts(incident_id)
        await rig.idle()
        before = len(rig.slack.calls())
        option = {bad: True}
        for signed in (
            slash_command(f"ack {incident_id}", **option),
            slash_command("declare Fake incident", **option),
            block_actions(ACTION_RESOLVE, str(incident_id), **option),
            app_mention("<@U0FIREBREAK> why?", thread_ts=ts, **option),
            url_verification(**option),
        ):
            response = await rig.post(signed)
            assert response.status_code == 401, response.text
        await asyncio.sleep(0.3)
        events = await rig.timeline(incident_id)
        assert [e.type for e in events] == [EventType.INCIDENT_CREATED, EventType.ALERT_RECEIVED]
        assert investigations.questions == []
        assert len(rig.slack.calls()) == before


async def test_url_verification_handshake(store_url: str) -> None:
    async with slack_rig(store_url) as rig:
        response = await rig.post(url_verification("the-challenge"))
        assert response.status_code == 200
        assert response.json()["challenge"] == "the-challenge"


async def test_route_answers_slack_disabled_without_a_bolt_app(store_url: str) -> None:
    body, headers = slash_command("help")
    async with run_app(make_config(store_url)) as app:  # console mode, no signing secret
        response = await app.client.post("/slack/events", content=body, headers=headers)
        assert response.status_code == 404 and response.json()["error"] == "slack_disabled"
    console = make_config(store_url, slack={"mode": "console"})
    async with run_app(
        console, Secrets(), Parts(slack=SlackOptions(outbox=FAST))
    ) as app:  # console, no signing secret
        response = await app.client.post("/slack/events", content=body, headers=headers)
        assert response.status_code == 404 and response.json()["error"] == "slack_disabled"


async def test_console_mode_with_a_signing_secret_runs_the_real_handlers(store_url: str) -> None:
    """What `firebreak demo` relies on: signed requests work without any Slack workspace."""
    async with slack_rig(store_url, mode="console") as rig:
        response = await rig.post(slash_command("help"))
        assert response.status_code == 200 and "/incident" in response.text
        forged = await rig.post(slash_command("help", forge=True))
        assert forged.status_code == 401
        assert rig.slack.calls() == []  # console mode never calls the Web API


# ---------------------------------------------------------------------- Slack retries


async def test_event_retries_are_handled_once(store_url: str) -> None:
    investigations = FakeInvestigations(answer_delay_s=0.2)
    async with slack_rig(store_url, investigations=investigations) as rig:
        incident_id = await rig.alert("g1", "a")
        ts = await rig.card_ts(incident_id)
        for retry in (None, 1, 2):
            response = await rig.post(
                app_mention(
                    "<@U0FIREBREAK> what broke?",
                    thread_ts=ts,
                    event_id="Ev0SAMEEVENT1",
                    ts="1732299999.000200",
                    retry_num=retry,
                )
            )
            assert response.status_code == 200
        await rig.wait(lambda: rig.slack.thread(CHANNEL, ts))
        await asyncio.sleep(0.5)
        await rig.idle()
        assert len(investigations.questions) == 1
        assert len(rig.slack.thread(CHANNEL, ts)) == 1
        notes = [e for e in await rig.timeline(incident_id) if e.type == EventType.NOTE]
        assert len(notes) == 2


async def test_a_retry_landing_on_another_replica_is_ignored(store_url: str) -> None:
    first, second = FakeInvestigations(), FakeInvestigations()
    with FakeSlackApi() as slack:
        async with (
            slack_rig(store_url, investigations=first, slack=slack) as one,
            slack_rig(store_url, investigations=second, slack=slack) as two,
        ):
            incident_id = await one.alert("g1", "a")
            ts = await one.card_ts(incident_id)
            signed = app_mention("<@U0FIREBREAK> status?", thread_ts=ts, event_id="Ev0REPLICA1")
            assert (await one.post(signed)).status_code == 200
            retry = app_mention(
                "<@U0FIREBREAK> status?", thread_ts=ts, event_id="Ev0REPLICA1", retry_num=1
            )
            assert (await two.post(retry)).status_code == 200
            await one.wait(lambda: slack.thread(CHANNEL, ts))
            await asyncio.sleep(0.5)
            assert len(first.questions) + len(second.questions) == 1
            assert len(slack.thread(CHANNEL, ts)) == 1


# ---------------------------------------------------------------------- rate limits, errors


async def test_429_retry_after_is_honoured_and_the_card_posted_once(store_url: str) -> None:
    async with slack_rig(store_url) as rig:
        rig.slack.rate_limit("chat.postMessage", times=1, retry_after=1)
        incident_id = await rig.alert("g1", "a")
        await rig.card_ts(incident_id)
        await rig.idle()
        limited, delivered = rig.slack.calls("chat.postMessage")
        assert limited.status == 429 and delivered.ok
        assert delivered.at - limited.at >= 1.0
        assert len(rig.slack.messages(CHANNEL)) == 1


async def test_long_retry_after_goes_back_to_the_outbox(store_url: str) -> None:
    async with slack_rig(store_url, max_inline_wait_s=0.5) as rig:
        rig.slack.rate_limit("chat.postMessage", times=1, retry_after=2)
        incident_id = await rig.alert("g1", "a")
        await rig.card_ts(incident_id, within=10)
        limited, delivered = rig.slack.calls("chat.postMessage")
        assert limited.status == 429 and delivered.ok
        assert delivered.at - limited.at >= 2.0
        assert len(rig.slack.messages(CHANNEL)) == 1


async def test_server_errors_are_retried(store_url: str) -> None:
    async with slack_rig(store_url) as rig:
        rig.slack.http_error("chat.postMessage", 500, times=4)
        rig.slack.http_error("chat.update", 502, times=2)
        incident_id = await rig.alert("g1", "a")
        ts = await rig.card_ts(incident_id)
        await rig.alert("g1", "a", "b")
        await rig.card_text(ts, "Alerts: 2")
        assert len(rig.slack.messages(CHANNEL)) == 1


async def test_an_api_refusal_is_given_up_and_the_lane_goes_on(store_url: str) -> None:
    async with slack_rig(store_url) as rig:
        rig.slack.api_error("chat.postMessage", "channel_not_found", times=FAST.max_attempts)
        incident_id = await rig.alert("g1", "a")
        await rig.wait(lambda: len(rig.slack.calls("chat.postMessage")) >= FAST.max_attempts)
        statuses = await rig.wait(lambda: _statuses(rig, incident_id))
        assert statuses == ["failed"]
        rig.outbox.say_in_thread(incident_id, "A later note", purpose="note")
        ts = await rig.card_ts(incident_id)  # the reply brings its card along
        await rig.wait(lambda: rig.slack.thread(CHANNEL, ts))


async def _statuses(rig: object, incident_id: int) -> list[str] | None:
    async with rig.runtime.engine.connect() as conn:  # type: ignore[attr-defined]
        rows = await conn.scalars(
            select(SlackOutbox.status).where(SlackOutbox.incident_id == incident_id)
        )
        found = list(rows)
    return found if found and "pending" not in found else None


# ---------------------------------------------------------------------- outages, restarts


async def test_outage_while_an_incident_opens_card_appears_after(store_url: str) -> None:
    async with slack_rig(store_url) as rig:
        rig.slack.outage = True
        started = time.perf_counter()
        incident_id = await rig.alert("g1", "a")
        assert time.perf_counter() - started < 2  # the webhook never waits for Slack
        rig.outbox.say_in_thread(incident_id, "RCA: a bad deploy", purpose="rca")
        await rig.alert("g1", "a", "b")
        await asyncio.sleep(1.0)
        assert rig.slack.calls("chat.postMessage") and not rig.slack.messages(CHANNEL)
        rig.slack.outage = False
        ts = await rig.card_ts(incident_id, within=5)
        await rig.idle()
        (card,) = [m for m in rig.slack.messages(CHANNEL) if "thread_ts" not in m]
        assert card["ts"] == ts
        assert "Alerts: 2" in render_text(card["blocks"])
        assert [m["text"] for m in rig.slack.thread(CHANNEL, ts)] == ["RCA: a bad deploy"]


async def test_every_card_catches_up_once_after_an_outage(store_url: str) -> None:
    async with slack_rig(store_url) as rig:
        rig.slack.outage = True
        ids = [await rig.alert(f"g{n}", f"a{n}") for n in range(4)]
        await rig.wait(lambda: len(rig.slack.calls("chat.postMessage")) >= 3)
        await asyncio.sleep(0.5)
        rig.slack.outage = False
        for incident_id in ids:
            await rig.card_ts(incident_id, within=5)
        await rig.idle()
        assert len(rig.card_posts()) == 4
        assert len(rig.slack.messages(CHANNEL)) == 4


async def test_messages_survive_a_restart_during_an_outage(store_url: str) -> None:
    with FakeSlackApi() as slack:
        slack.outage = True
        async with slack_rig(store_url, slack=slack) as rig:
            incident_id = await rig.alert("g1", "a")
            rig.outbox.say_in_thread(incident_id, "RCA: disk full", purpose="rca")
            await rig.wait(lambda: slack.calls("chat.postMessage"))
        slack.outage = False
        async with slack_rig(store_url, slack=slack) as rig:
            ts = await rig.card_ts(incident_id)
            await rig.idle()
            assert [m["text"] for m in slack.thread(CHANNEL, ts)] == ["RCA: disk full"]
            assert len(rig.card_posts()) == 1


async def test_incidents_opened_without_slack_get_a_card_on_start(store_url: str) -> None:
    async with run_app(make_config(store_url), parts=Parts(notifier=QuietNotifier())) as app:
        response = await app.client.post("/webhooks/alertmanager", json=group("g1", [alert("a")]))
        incident_id = response.json()["incident_id"]
    async with slack_rig(store_url) as rig:
        ts = await rig.card_ts(incident_id)
        assert f"#{incident_id}" in rig.slack.message(CHANNEL, ts)["text"]


async def test_only_the_lease_holder_delivers(store_url: str) -> None:
    """Two replicas on one store: rows written by either are delivered once, by one."""
    with FakeSlackApi() as slack:
        async with (
            slack_rig(store_url, slack=slack) as one,
            slack_rig(store_url, slack=slack, settings=OutboxSettings(poll_s=0.1)) as two,
        ):
            ids = [await one.alert("g1", "a"), await two.alert("g2", "b")]
            for incident_id in ids:
                two.outbox.card_changed(incident_id)
                one.outbox.card_changed(incident_id)
            for incident_id in ids:
                await one.card_ts(incident_id)
            await one.idle()
            assert len([m for m in slack.messages(CHANNEL) if "thread_ts" not in m]) == 2
            leaders = [r.outbox._leader for r in (one, two)]
            assert sorted(leaders) == [False, True]


async def test_readiness_reports_the_drainer(store_url: str) -> None:
    async with slack_rig(store_url) as rig:
        response = await rig.client.get("/readyz")
        assert response.json()["checks"]["slack"] == "ok"


@pytest.mark.parametrize(
    ("mode", "secrets", "variable"),
    [
        ("http", Secrets(), "SLACK_BOT_TOKEN"),
        ("socket", Secrets(), "SLACK_BOT_TOKEN"),
        ("socket", slack_secrets(), "SLACK_APP_TOKEN"),
    ],
)
async def test_missing_tokens_are_named_at_start(
    store_url: str, mode: str, secrets: Secrets, variable: str
) -> None:
    config = make_config(store_url, slack={"mode": mode})
    with pytest.raises(SlackSetupError, match=variable):
        async with assembled(config, secrets, Parts()):
            pytest.fail("started without its Slack token")
