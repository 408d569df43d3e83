"""Escalation ladders and reminders through the running app (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import select, update

from firebreak.bot.messages import replies
from firebreak.incidents import transitions
from firebreak.store.models import EscalationState, Incident
from tests.conftest import make_config
from tests.support.app import RunningApp, free_tcp_port, run_app
from tests.support.escalation import (
    RecordingNotifier,
    open_incident,
    pages,
    recording,
    timeline,
)
from tests.support.payloads import alert, group
from tests.support.waiting import eventually


def escalation(levels: list[tuple[list[str], float]], **extra: Any) -> dict[str, Any]:
    policy = {
        "name": extra.pop("name", "default"),
        "match": extra.pop("match", {}),
        "levels": [{"notify": notify, "timeout_s": timeout} for notify, timeout in levels],
        "repeat": extra.pop("repeat", 0),
    }
    return {"policies": [policy], "sweep_interval_s": 0.5, **extra}


async def escalate(app: RunningApp, incident_id: int, actor: str) -> str:
    """A manual escalation as a person gets it: the action, worded as Slack words it."""
    return replies.escalated(await app.runtime.incidents.escalate(incident_id, actor)).text


def app_for(store_url: str, notifier: RecordingNotifier, **sections: Any) -> Any:
    config = make_config(store_url, **sections)
    return run_app(config, parts=recording(notifier))


async def wait_pages(app: RunningApp, incident_id: int, count: int, within: float = 10) -> list:
    async def enough() -> list | None:
        found = await pages(app.client, incident_id)
        return found if len(found) >= count else None

    return await eventually(enough, within=within)


def at(event: dict) -> datetime:
    return datetime.fromisoformat(event["at"])


async def test_ladder_climbs_on_time_repeats_and_stops_at_the_end(store_url: str) -> None:
    notifier = RecordingNotifier()
    config = escalation([(["U1"], 0.6), (["S2", "C3"], 0.6)], repeat=1)
    async with app_for(store_url, notifier, escalation=config) as app:
        incident_id = await open_incident(app.client)
        await wait_pages(app, incident_id, 4)
        await asyncio.sleep(1.2)  # two timeouts more: nothing further may be paged

        assert await pages(app.client, incident_id) == [
            (1, 0, ["U1"]),
            (2, 0, ["S2", "C3"]),
            (1, 1, ["U1"]),
            (2, 1, ["S2", "C3"]),
        ]
        events = await timeline(app.client, incident_id, "ESCALATED")
        gaps = [(at(b) - at(a)).total_seconds() for a, b in itertools.pairwise(events)]
        assert all(gap >= 0.55 for gap in gaps), gaps  # never before the level's timeout
        assert all(gap < 3 for gap in gaps), gaps

        incident = (await app.client.get(f"/api/v1/incidents/{incident_id}")).json()
        assert incident["escalation_level"] == 2
        async with app.runtime.engine.connect() as conn:
            state = (
                await conn.execute(
                    select(EscalationState).where(EscalationState.incident_id == incident_id)
                )
            ).one()
        assert state.next_at is None and state.policy["name"] == "default"

    page_texts = notifier.posts("page")
    assert len(page_texts) == 4
    assert "<@U1>" in page_texts[0]
    assert "<!subteam^S2>" in page_texts[1] and "<#C3>" in page_texts[1]
    assert [user for user, _ in notifier.dms] == ["U1", "U1"]  # DMs only to users


async def test_acknowledge_stops_the_ladder_and_reminders_run_until_resolved(
    store_url: str,
) -> None:
    notifier = RecordingNotifier()
    config = escalation([(["U1"], 0.8), (["U2"], 0.8)], reminder_interval_s=0.5)
    async with app_for(store_url, notifier, escalation=config) as app:
        incident_id = await open_incident(app.client)
        await wait_pages(app, incident_id, 1)
        async with app.runtime.engine.begin() as conn:
            assert (await conn.run_sync(transitions.acknowledge, incident_id, "U1")).changed

        async def two_reminders() -> bool:
            return len(await timeline(app.client, incident_id, "REMINDER")) >= 2

        await eventually(two_reminders, within=8)
        assert await pages(app.client, incident_id) == [(1, 0, ["U1"])]  # level 2 never came

        async with app.runtime.engine.begin() as conn:
            assert (await conn.run_sync(transitions.resolve, incident_id, "U1")).changed
        reminders = len(await timeline(app.client, incident_id, "REMINDER"))
        await asyncio.sleep(1.2)
        assert len(await timeline(app.client, incident_id, "REMINDER")) == reminders

    assert notifier.posts("page") == [notifier.posts("page")[0]]
    assert len(notifier.posts("reminder")) == reminders
    assert "<@U1>" in notifier.posts("reminder")[0]


async def test_escalate_now_pages_the_next_level_at_once(store_url: str) -> None:
    notifier = RecordingNotifier()
    config = escalation([(["U1"], 60), (["U2"], 60), (["U3"], 60)])
    async with app_for(store_url, notifier, escalation=config) as app:
        incident_id = await open_incident(app.client)
        await wait_pages(app, incident_id, 1)
        escalations = app.runtime.escalations

        answer = await escalate(app, incident_id, "U9")

        assert "level 2" in answer and "<@U2>" in answer
        assert await pages(app.client, incident_id) == [(1, 0, ["U1"]), (2, 0, ["U2"])]
        manual = (await timeline(app.client, incident_id, "ESCALATED"))[-1]
        assert manual["actor"] == "U9" and manual["data"]["manual"] is True
        incident = (await app.client.get(f"/api/v1/incidents/{incident_id}")).json()
        assert incident["escalation_level"] == 2
        # the timer job made for level 2 is stale now: firing it pages nobody
        assert not await escalations.fire_step(incident_id, 1)  # type: ignore[attr-defined]

        assert "level 3" in await escalate(app, incident_id, "U9")
        assert "last escalation level" in await escalate(app, incident_id, "U9")
        assert len(await pages(app.client, incident_id)) == 3
        assert "no incident" in (await escalate(app, 9999, "U9")).lower()


async def test_each_step_runs_once_however_often_it_fires(store_url: str) -> None:
    """Duplicate jobs, and (on PostgreSQL) concurrent connections as replicas would have."""
    notifier = RecordingNotifier()
    config = escalation([(["U1"], 60), (["U2"], 60)])
    async with app_for(store_url, notifier, escalation=config) as app:
        incident_id = await open_incident(app.client)
        await wait_pages(app, incident_id, 1)
        escalations: Any = app.runtime.escalations
        async with app.runtime.engine.connect() as conn:
            step = await conn.scalar(
                select(EscalationState.step).where(EscalationState.incident_id == incident_id)
            )
        fired = await asyncio.gather(*(escalations.fire_step(incident_id, step) for _ in range(6)))

        assert sorted(fired) == [False] * 5 + [True]
        assert await pages(app.client, incident_id) == [(1, 0, ["U1"]), (2, 0, ["U2"])]
        assert len(notifier.posts("page")) == 2


async def test_running_ladder_keeps_its_policy_across_a_config_change_and_restart(
    store_url: str,
) -> None:
    notifier = RecordingNotifier()
    before = escalation([(["U1"], 1.0), (["U2"], 1.0)])
    async with app_for(store_url, notifier, escalation=before) as app:
        incident_id = await open_incident(app.client)
        await wait_pages(app, incident_id, 1)
    await asyncio.sleep(1.3)  # level 2 falls due while nothing runs

    after = escalation([(["U7"], 0.3), (["U8"], 0.3), (["U9"], 0.3)], name="changed")
    async with app_for(store_url, notifier, escalation=after) as app:
        await wait_pages(app, incident_id, 2)
        await asyncio.sleep(1.0)
        assert await pages(app.client, incident_id) == [(1, 0, ["U1"]), (2, 0, ["U2"])]
        late = (await timeline(app.client, incident_id, "ESCALATED"))[-1]
        assert late["data"]["policy"] == "default"

        # a new incident gets the new policy
        other = await open_incident(app.client, key="g2")
        first = (await wait_pages(app, other, 1))[0]
        assert first == (1, 0, ["U7"])


async def test_first_matching_policy_wins_and_unmatched_incidents_page_nobody(
    store_url: str,
) -> None:
    notifier = RecordingNotifier()
    config = {
        "policies": [
            {"name": "payments", "match": {"service": "payments"}, "levels": [{"notify": ["U5"]}]},
            {"name": "critical", "match": {"severity": "critical"}, "levels": [{"notify": ["U6"]}]},
        ],
        "sweep_interval_s": 0.5,
    }
    async with app_for(store_url, notifier, escalation=config) as app:
        payments = await open_incident(app.client, key="p", service="payments")
        checkout = await open_incident(app.client, key="c", service="checkout")
        quiet = await open_incident(app.client, key="q", severity="info")
        assert (await wait_pages(app, payments, 1))[0][2] == ["U5"]
        assert (await wait_pages(app, checkout, 1))[0][2] == ["U6"]
        await asyncio.sleep(0.5)
        assert await pages(app.client, quiet) == []
        assert "nobody to page" in await escalate(app, quiet, "U1")
        ready = (await app.client.get("/readyz")).json()
        assert ready["checks"]["scheduler"] == "ok"


async def test_kill_9_with_a_pending_step_then_restart_fires_it_exactly_once(
    tmp_path: Path,
) -> None:
    """A real `firebreak serve` (SQLite) is killed with a step pending; after the restart the
    late step pages once, and the ladder goes on from there."""
    port = free_tcp_port()
    config = {
        "server": {"host": "127.0.0.1", "port": port},
        "store": {"url": f"sqlite+aiosqlite:///{tmp_path / 'firebreak.db'}"},
        "slack": {"mode": "console"},
        "llm": {"provider": "offline"},
        "escalation": escalation([(["U1"], 1.5), (["U2"], 1.5), (["U3"], 1.5)]),
    }
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FIREBREAK", "SLACK_"))}

    def serve(name: str) -> subprocess.Popen[bytes]:
        with (tmp_path / f"{name}.log").open("wb") as log:
            return subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "firebreak"),
                    "serve",
                    "--config",
                    str(config_path),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    async def ready(client: httpx.AsyncClient) -> bool:
        try:
            return (await client.get("/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    first = serve("first")
    second: subprocess.Popen[bytes] | None = None
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            await eventually(lambda: ready(client), within=30)
            incident_id = await open_incident(client)

            async def paged(count: int) -> list | None:
                found = await pages(client, incident_id)
                return found if len(found) >= count else None

            await eventually(lambda: paged(1), within=10)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
            await asyncio.sleep(2.0)  # level 2 falls due while nothing runs

            second = serve("second")
            await eventually(lambda: ready(client), within=30)
            await eventually(lambda: paged(3), within=15)
            await asyncio.sleep(1.0)
            found = await pages(client, incident_id)
            events = await timeline(client, incident_id, "ESCALATED")
        assert found == [(1, 0, ["U1"]), (2, 0, ["U2"]), (3, 0, ["U3"])]
        late = events[1]
        lateness = (at(late) - datetime.fromisoformat(late["data"]["due"])).total_seconds()
        assert lateness > 0.4  # it really was due while the process was dead
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=20)


async def test_alertmanager_resolving_the_group_stops_the_ladder(store_url: str) -> None:
    notifier = RecordingNotifier()
    config = escalation([(["U1"], 60), (["U2"], 60)])
    async with app_for(store_url, notifier, escalation=config) as app:
        incident_id = await open_incident(app.client)
        await wait_pages(app, incident_id, 1)
        resolved = group("g1", [alert("a", status="resolved")], status="resolved")
        assert (await app.client.post("/webhooks/alertmanager", json=resolved)).status_code == 200
        async with app.runtime.engine.connect() as conn:
            state = (
                await conn.execute(
                    select(EscalationState).where(EscalationState.incident_id == incident_id)
                )
            ).one()
        assert state.next_at is None  # no longer among the due ladders, nothing left to page


async def test_a_full_batch_of_stale_ladders_neither_stalls_the_timer_nor_hides_due_steps(
    store_url: str,
) -> None:
    """Ladders left running on resolved incidents (rows an older build wrote) fill whole
    batches of due rows: the timer must clear them and still page the live one behind them."""
    notifier = RecordingNotifier()
    config = escalation([(["U1"], 3600), (["U2"], 3600), (["U3"], 3600)])
    async with app_for(store_url, notifier, escalation=config) as app:
        stale = [await open_incident(app.client, key=f"stale{i}") for i in range(5)]
        live = await open_incident(app.client, key="live")
        for incident_id in [*stale, live]:
            await wait_pages(app, incident_id, 1)
        past = datetime.now(UTC) - timedelta(seconds=5)
        async with app.runtime.engine.begin() as conn:
            await conn.execute(update(EscalationState).values(next_at=past))
            await conn.execute(
                update(Incident).where(Incident.id.in_(stale)).values(status="resolved")
            )
        escalations = app.runtime.escalations
        escalations.due_batch = 2  # five stale rows fill more than two batches

        fired = await asyncio.wait_for(escalations.fire_due(), timeout=20)

        assert fired == 1
        assert [level for level, _, _ in await pages(app.client, live)] == [1, 2]
        async with app.runtime.engine.connect() as conn:
            running = await conn.scalars(
                select(EscalationState.incident_id).where(EscalationState.next_at.is_not(None))
            )
            assert set(running) == {live}  # the stale ones were stopped, the live one goes on
