"""PostgreSQL restarted under Firebreak: a server of the test's own (tests/support/pg_server.py),
stopped and started while alerts arrive and an investigation runs."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from langgraph.checkpoint.base import empty_checkpoint
from sqlalchemy import select

from firebreak.agents.runner import CHECKPOINT_POOL_WAIT_S, open_checkpointer
from firebreak.store.migrate import upgrade
from firebreak.store.models import Alert
from tests.agents.test_graph import STARTS, analysed, config_for, event_types, rca
from tests.fakes.llm_servers import ScriptedLLMServer, answer
from tests.support.app import RunningApp, investigating, run_app
from tests.support.payloads import alert, group
from tests.support.pg_server import PgServer
from tests.support.waiting import eventually

LLM_THINKS_S = 3.0
# Down for longer than the model takes plus a checkpoint write's wait for a connection, so the
# run is cut short (a shorter outage is waited out: the write goes through once it is back).
DOWN_S = LLM_THINKS_S + CHECKPOINT_POOL_WAIT_S + 4


async def test_the_checkpointer_reconnects_after_a_restart(own_postgres: PgServer) -> None:
    await asyncio.to_thread(upgrade, own_postgres.url)
    config = {"configurable": {"thread_id": "t1", "checkpoint_ns": ""}}
    async with open_checkpointer(own_postgres.url) as saver:
        await saver.aput(config, empty_checkpoint(), {"source": "input", "step": -1}, {})
        await asyncio.to_thread(own_postgres.restart)
        found = await saver.aget_tuple(config)
    assert found is not None


@dataclass
class Load:
    """Alertmanager's side: one more alert of the group under investigation every `every_s`
    (so there is one incident and one investigation), each answer kept."""

    app: RunningApp
    every_s: float = 0.1
    answers: dict[str, tuple[int, dict]] = field(default_factory=dict)  # fingerprint -> answer
    readiness: list[tuple[float, int, str]] = field(default_factory=list)

    async def send(self, fingerprint: str) -> None:
        payload = group("g1", [alert(fingerprint, starts_at=STARTS)])
        response = await self.app.client.post("/webhooks/alertmanager", json=payload)
        self.answers[fingerprint] = (response.status_code, response.json())

    async def alerts(self, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            await self.send(f"load-{n}")
            await asyncio.sleep(self.every_s)

    async def watch_readiness(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            response = await self.app.client.get("/readyz")
            self.readiness.append(
                (time.monotonic(), response.status_code, response.json()["checks"]["store"])
            )
            await asyncio.sleep(0.25)


async def test_a_postgresql_restart_under_load(own_postgres: PgServer, tmp_path: Path) -> None:
    with ScriptedLLMServer("openai") as llm:
        llm.script(answer(rca(), delay_s=LLM_THINKS_S))  # the run is at the model when it goes
        llm.default = answer(rca())
        config = config_for(own_postgres.url, tmp_path, llm)
        async with run_app(config, parts=investigating()) as app:
            opened = await app.client.post(
                "/webhooks/alertmanager", json=group("g1", [alert("a", starts_at=STARTS)])
            )
            incident_id = opened.json()["incident_id"]
            load, stop = Load(app), asyncio.Event()
            background = [
                asyncio.create_task(load.alerts(stop)),
                asyncio.create_task(load.watch_readiness(stop)),
            ]
            await eventually(lambda: _asked(llm), within=30)
            await asyncio.to_thread(own_postgres.stop)
            down_at = time.monotonic()
            await asyncio.sleep(DOWN_S)
            await asyncio.to_thread(own_postgres.start)
            up_at = time.monotonic()
            analysis = (await analysed(app, incident_id))["analysis"]
            await eventually(lambda: _ready_since(load, up_at), within=20)
            stop.set()
            await asyncio.gather(*background)
            refused = {fp: sent for fp, sent in load.answers.items() if sent[0] != 200}
            for fingerprint in refused:  # Alertmanager sends again what was not acknowledged
                await load.send(fingerprint)
            types = await event_types(app, incident_id)
            async with app.runtime.engine.connect() as conn:
                stored = set(await conn.scalars(select(Alert.fingerprint)))

    acknowledged = {fp for fp, (status, _) in load.answers.items() if status == 200}
    assert refused, "some alerts arrived while PostgreSQL was down"
    assert {(code, body["error"]) for code, body in refused.values()} == {
        (503, "store_unavailable")
    }
    assert acknowledged == set(load.answers), "every alert is stored once it is acknowledged"
    assert acknowledged <= stored
    assert {status for status, _ in load.answers.values()} == {200}
    assert analysis["execution_status"] == "COMPLETED"
    assert analysis["root_cause"].startswith("Payments endpoint refuses")
    assert types.count("AI_ANALYSIS_STARTED") == 1
    assert types.count("AI_ANALYSIS_RETRIED") == 1
    assert "AI_ANALYSIS_FAILED" not in types
    not_ready = [s for at, code, s in load.readiness if down_at < at < up_at and code == 503]
    assert not_ready, load.readiness
    assert all(s.startswith(("unreachable:", "writes failing:")) for s in not_ready)
    assert load.readiness[-1][1:] == (200, "ok")
    ready_again = min(at for at, code, _ in load.readiness if at > up_at and code == 200)
    print(
        f"\n{len(load.answers)} alerts sent, {len(refused)} answered 503 while down and stored "
        f"when sent again; /readyz 503 {len(not_ready)} times, ready "
        f"{ready_again - up_at:.1f} s after the server was back; first reason: {not_ready[0]}"
    )


async def _asked(llm: ScriptedLLMServer) -> bool:
    return llm.chat_calls >= 1


async def _ready_since(load: Load, since: float) -> bool:
    return any(at > since and code == 200 for at, code, _ in load.readiness)
