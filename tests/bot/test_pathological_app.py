"""The running app keeps answering `/healthz` while it takes in the worst text we know of: a
1 MB log line in an investigation's file source, a 5,000-character `@firebreak` question and a
5,000-character `/incident declare` title, each made of what used to make the redactor
quadratic (`a.` repeated took 14 s per 8,000 characters, holding the GIL).

The 100 ms bound is on those pathological inputs, where the event loop used to stall for
seconds to minutes; it is no target for normal speed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from firebreak.store import incidents
from firebreak.store.schemas import EventType
from tests.bot.slack_harness import CHANNEL, slack_rig
from tests.conftest import make_config
from tests.support.app import investigating, run_app
from tests.support.payloads import alert, group
from tests.support.slack_signing import app_mention, slash_command
from tests.support.waiting import eventually

HEALTHZ_BOUND_S = 0.1
NASTY = "a." * 1000 + "password " * 200 + "a=" * 500 + "[{" * 300 + "eyJ-" * 200


async def healthz_while(client: httpx.AsyncClient, work: Callable[[], Awaitable[Any]]) -> float:
    """The slowest `/healthz` answer seen while `work` ran (asked every 20 ms)."""
    task = asyncio.create_task(work())
    slowest = 0.0
    while not task.done():
        began = time.perf_counter()
        response = await client.get("/healthz")
        slowest = max(slowest, time.perf_counter() - began)
        assert response.status_code == 200
        await asyncio.sleep(0.02)
    task.result()
    return slowest


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_a_1mb_log_line_in_a_file_source(store_url: str, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    log = tmp_path / "app.log"
    log.write_text(
        f"{_stamp(now - timedelta(minutes=6))} INFO deploy checkout v2 complete\n"
        f"{_stamp(now - timedelta(minutes=5))} ERROR {'a.' * 500_000}\n"
        f"{_stamp(now - timedelta(minutes=4))} ERROR payment timeout: pool exhausted\n"
    )
    config = make_config(
        store_url,
        llm={"provider": "offline"},
        sources={"logs": [{"type": "file", "name": "app", "path": str(log)}]},
    )
    payload = group("g-big", [alert("fp1", starts_at=now - timedelta(minutes=3))])
    async with run_app(config, parts=investigating()) as app:

        async def investigated() -> None:
            response = await app.client.post("/webhooks/alertmanager", json=payload)
            incident_id = response.json()["incident_id"]

            async def analysed() -> bool:
                async with app.runtime.engine.connect() as conn:
                    events = await incidents.timeline(conn, incident_id) or []
                return any(e.type == EventType.ROOT_CAUSE_GENERATED for e in events)

            await eventually(analysed, within=60)
            async with app.runtime.engine.connect() as conn:
                stored = await incidents.latest_evidence(conn, incident_id)
            assert stored is not None
            texts = [line["text"] for line in stored["logs"]]
            assert any(text.endswith("…") and len(text) <= 600 for text in texts), texts

        slowest = await healthz_while(app.client, investigated)
    assert slowest < HEALTHZ_BOUND_S, f"/healthz took {slowest:.3f}s"


async def test_a_long_mention_and_a_long_declare_through_slack(store_url: str) -> None:
    async with slack_rig(store_url, with_doubles=False) as rig:
        incident_id = await rig.alert("g-mention", "fp1")
        ts = await rig.card_ts(incident_id)

        async def asked() -> None:
            mention = app_mention(f"<@U0FIREBREAK> {NASTY}", thread_ts=ts, user_id="U0BOB")
            assert (await rig.post(mention)).status_code == 200
            declared = slash_command(
                f"declare {NASTY}", response_url=rig.slack.response_url("declare")
            )
            assert (await rig.post(declared)).status_code == 200
            await rig.wait(
                lambda: [m for m in rig.slack.thread(CHANNEL, ts) if "asked" in m["text"]],
                within=60,
            )

        slowest = await healthz_while(rig.client, asked)
        notes = [e for e in await rig.timeline(incident_id) if e.type == EventType.NOTE]
        assert notes and all(len(n.message) <= 4000 for n in notes)
    assert slowest < HEALTHZ_BOUND_S, f"/healthz took {slowest:.3f}s"
