"""Silence and Unsilence from the card and `/incident`, against the real Alertmanager (Debian's,
started by tests/support), with requests signed as Slack signs them; and what a person is told
when Alertmanager is down or refuses (nothing recorded)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from firebreak.bot.console import render_text
from firebreak.bot.messages.silences import (
    ACTION_SILENCE,
    ACTION_UNSILENCE,
    SILENCE_ACTIONS_BLOCK,
    silence_value,
)
from firebreak.incidents.silences import SilenceEnds, group_labels
from firebreak.store.models import IncidentSilence
from firebreak.tools.alertmanager import AlertmanagerClient
from tests.fakes.slack_api import FakeSlackApi
from tests.oncall.rig import (
    card,
    card_text,
    click,
    command,
    events,
    oncall_app,
    open_incident,
)
from tests.support.app import RunningApp
from tests.support.http import serving
from tests.support.promstack import free_port, run_alertmanager

PUBLIC = "https://firebreak.example.com"


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir: Path = tmp_path_factory.mktemp("am")
    with run_alertmanager(workdir, webhook_url="http://127.0.0.1:9/unused") as url:
        yield url


def sections(alertmanager_url: str) -> dict:
    return {
        "alertmanager": {"url": alertmanager_url, "silence_durations": ["1h", "4h"]},
        "server": {"public_url": PUBLIC},
    }


async def silence_rows(app: RunningApp) -> int:
    async with app.runtime.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(IncidentSilence)) or 0)


async def timeline_types(app: RunningApp, incident_id: int) -> list[str]:
    response = await app.client.get(f"/api/v1/incidents/{incident_id}/timeline")
    return [event["type"] for event in response.json()]


@pytest.mark.integration
async def test_silence_then_unsilence_from_the_card(store_url: str, alertmanager: str) -> None:
    with FakeSlackApi() as slack:
        async with oncall_app(store_url, slack, **sections(alertmanager)) as app:
            incident_id = await open_incident(app, labels_key=True)
            channel, ts = await card(app, slack, incident_id)
            await card_text(slack, channel, ts, "[ 🔕 Silence 1h ] [ 🔕 Silence 4h ]")

            before = datetime.now(UTC)
            answer = await click(
                app,
                slack,
                f"{ACTION_SILENCE}_1",
                silence_value(incident_id, "4h"),
                block_id=SILENCE_ACTIONS_BLOCK,
                message_ts=ts,
            )
            assert answer.startswith(f":no_bell: Silenced the alerts of incident #{incident_id}")
            silenced = (await events(app, incident_id, "SILENCED"))[0]
            silence_id = silenced["data"]["silence_id"]
            assert silenced["actor"] == "U0ALICE" and silence_id in answer
            assert silenced["data"]["matchers"] == {"alertname": "HighErrorRate"}

            async with AlertmanagerClient(alertmanager) as am:
                silence = await am.get_silence(silence_id)
            assert silence.state == "active" and silence.created_by == "U0ALICE"
            assert f"{PUBLIC}/incidents/{incident_id}" in silence.comment
            assert [(m.name, m.value, m.is_regex) for m in silence.matchers] == [
                ("alertname", "HighErrorRate", False)
            ]
            four_hours = before + timedelta(hours=4)
            assert timedelta(0) <= silence.ends_at - four_hours < timedelta(minutes=1)

            text = await card_text(slack, channel, ts, "Silenced until")
            assert "by @U0ALICE" in text and "[ 🔔 Unsilence ]" in text
            assert "Silence 4h" not in text

            answer = await click(
                app,
                slack,
                ACTION_UNSILENCE,
                str(incident_id),
                block_id=SILENCE_ACTIONS_BLOCK,
                message_ts=ts,
                user_id="U0BOB",
            )
            assert answer.startswith(":bell: Lifted the silence on incident")
            lifted = (await events(app, incident_id, "UNSILENCED"))[0]
            assert lifted["actor"] == "U0BOB" and lifted["data"]["silence_id"] == silence_id
            async with AlertmanagerClient(alertmanager) as am:
                assert (await am.get_silence(silence_id)).state == "expired"
            text = await card_text(slack, channel, ts, "Silence 4h")
            assert "Silenced until" not in text and await silence_rows(app) == 0


@pytest.mark.integration
async def test_silence_and_unsilence_commands(store_url: str, alertmanager: str) -> None:
    with FakeSlackApi() as slack:
        async with oncall_app(store_url, slack, **sections(alertmanager)) as app:
            incident_id = await open_incident(app)
            first = await command(app, slack, f"silence {incident_id} 2h")
            assert first.startswith(":no_bell: Silenced")
            again = await command(app, slack, f"silence #{incident_id} 1d")  # replaces it
            assert again.startswith(":no_bell: Silenced")
            silenced = await events(app, incident_id, "SILENCED", 2)
            old, new = (event["data"]["silence_id"] for event in silenced)
            assert silenced[1]["data"]["replaces"] == old
            # no readable group key here ("g1"): the incident's labels are matched
            assert silenced[0]["data"]["matchers"] == {
                "alertname": "HighErrorRate",
                "service": "checkout",
                "severity": "critical",
            }
            async with AlertmanagerClient(alertmanager) as am:
                assert (await am.get_silence(old)).state == "expired"
                assert (await am.get_silence(new)).state == "active"

            assert "Lifted" in await command(app, slack, f"unsilence {incident_id}")
            assert "is not silenced" in await command(app, slack, f"unsilence {incident_id}")
            bad = await command(app, slack, f"silence {incident_id} forever")
            assert "'forever' is not a duration like 30m, 4h or 1d" in bad
            assert "no incident `99`" in await command(app, slack, "silence 99 1h")
            assert "Usage: `/incident silence ID DURATION`" in await command(
                app, slack, f"silence {incident_id}"
            )
            async with AlertmanagerClient(alertmanager) as am:
                assert (await am.get_silence(new)).state == "expired"
            types = await timeline_types(app, incident_id)
    assert types.count("SILENCED") == 2 and types.count("UNSILENCED") == 1


@pytest.mark.integration
async def test_a_silence_that_runs_out_leaves_the_card(store_url: str, alertmanager: str) -> None:
    """The `sil` job (reconciled from the row within a sweep) ends it at `ends_at`: the row is
    forgotten, `UNSILENCED` says it ran out, the card offers Silence again."""
    fast_sweep = {"escalation": {"sweep_interval_s": 0.5}}
    with FakeSlackApi() as slack:
        async with oncall_app(store_url, slack, **fast_sweep, **sections(alertmanager)) as app:
            incident_id = await open_incident(app, labels_key=True)
            channel, ts = await card(app, slack, incident_id)
            answer = await command(app, slack, f"silence {incident_id} 3s")
            assert answer.startswith(":no_bell: Silenced")
            await card_text(slack, channel, ts, "Silenced until")

            ended = (await events(app, incident_id, "UNSILENCED"))[0]
            silence_id = (await events(app, incident_id, "SILENCED"))[0]["data"]["silence_id"]
            assert ended["actor"] == "alertmanager"
            assert ended["data"]["silence_id"] == silence_id and ended["data"]["expired"] is True
            text = await card_text(slack, channel, ts, "Silence 1h")
            assert "Silenced until" not in text and await silence_rows(app) == 0
            async with AlertmanagerClient(alertmanager) as am:
                assert (await am.get_silence(silence_id)).state == "expired"


@pytest.mark.integration
async def test_a_stale_or_early_end_changes_nothing(store_url: str, alertmanager: str) -> None:
    with FakeSlackApi() as slack:
        async with oncall_app(store_url, slack, **sections(alertmanager)) as app:
            incident_id = await open_incident(app)
            assert (await command(app, slack, f"silence {incident_id} 1h")).startswith(
                ":no_bell: Silenced"
            )
            until = datetime.fromisoformat(
                (await events(app, incident_id, "SILENCED"))[0]["data"]["until"]
            )
            ends = SilenceEnds(writer=app.runtime.writer, bus=app.runtime.bus)
            assert not await ends.fire(incident_id, int(until.timestamp()) - 60)  # replaced one
            assert not await ends.fire(incident_id, int(until.timestamp()))  # not run out yet
            assert await silence_rows(app) == 1
            types = await timeline_types(app, incident_id)
    assert "UNSILENCED" not in types


async def test_alertmanager_down_answers_why_and_records_nothing(store_url: str) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with FakeSlackApi() as slack:
        async with oncall_app(store_url, slack, **sections(down)) as app:
            incident_id = await open_incident(app)
            channel, ts = await card(app, slack, incident_id)
            answer = await click(
                app,
                slack,
                f"{ACTION_SILENCE}_0",
                silence_value(incident_id, "1h"),
                block_id=SILENCE_ACTIONS_BLOCK,
                message_ts=ts,
            )
            assert answer == (
                f":x: Could not change the silence of incident #{incident_id}: Alertmanager at "
                f"{down} is down or unreachable (ConnectError). Nothing was recorded."
            )
            unsilence = await command(app, slack, f"unsilence {incident_id}")
            assert unsilence == f"Incident #{incident_id} is not silenced."
            assert await app.runtime.outbox.idle(10)  # type: ignore[union-attr]
            text = render_text(slack.message(channel, ts).get("blocks") or [])
            assert "Silenced until" not in text and "Silence 1h" in text
            assert await silence_rows(app) == 0
            types = await timeline_types(app, incident_id)
    assert "SILENCED" not in types and "UNSILENCED" not in types


@pytest.fixture
def refusing_alertmanager() -> Iterator[str]:
    """An authenticating proxy in front of Alertmanager that refuses our token."""

    body = json.dumps({"message": "token not accepted"}).encode()
    with serving(lambda _request: (403, "application/json", body)) as url:
        yield url


async def test_alertmanager_refusing_answers_what_it_said(
    store_url: str, refusing_alertmanager: str
) -> None:
    with FakeSlackApi() as slack:
        async with oncall_app(store_url, slack, **sections(refusing_alertmanager)) as app:
            incident_id = await open_incident(app)
            answer = await command(app, slack, f"silence {incident_id} 4h")
            assert await silence_rows(app) == 0
            types = await timeline_types(app, incident_id)
    assert answer == (
        f":x: Could not change the silence of incident #{incident_id}: Alertmanager refused to "
        "create the silence (HTTP 403): token not accepted; check $FIREBREAK_ALERTMANAGER_TOKEN. "
        "Nothing was recorded."
    )
    assert "SILENCED" not in types


async def test_without_alertmanager_the_card_has_no_silence_controls(store_url: str) -> None:
    with FakeSlackApi() as slack:
        async with oncall_app(store_url, slack) as app:
            incident_id = await open_incident(app)
            channel, ts = await card(app, slack, incident_id)
            answer = await command(app, slack, f"silence {incident_id} 4h")
            assert await app.runtime.outbox.idle(10)  # type: ignore[union-attr]
            text = render_text(slack.message(channel, ts).get("blocks") or [])
    assert "Silence 1h" not in text and "Unsilence" not in text
    assert answer == "Silences need Alertmanager: set `alertmanager.url` in the configuration."


def test_group_labels_come_from_the_group_key_when_they_agree_with_the_incident() -> None:
    labels = {"alertname": "HighErrorRate", "service": "checkout", "severity": "critical"}
    key = '{}/{severity=~"critical|page"}:{alertname="HighErrorRate", service="checkout"}'
    assert group_labels(key, labels) == {"alertname": "HighErrorRate", "service": "checkout"}
    quoted = {"alertname": 'Say "hi"'}
    assert group_labels('{}:{alertname="Say \\"hi\\""}', quoted) == quoted
    # a key that names other values, or none, falls back to the incident's labels
    assert group_labels('{}:{alertname="Other"}', labels) == labels
    assert group_labels("g1", labels) == labels
    assert group_labels(None, {}) == {}
