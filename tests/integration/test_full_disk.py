"""The disk under the SQLite store and its checkpoints fills up while Firebreak works, then is
freed: a tmpfs of the test's own (tests/support/small_disk.py)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from firebreak.bot.slack_app import SlackOptions
from firebreak.bot.slack_outbox import CARD_EVENT
from firebreak.components import Parts
from tests.agents.test_graph import STARTS, analysed, config_for, event_types, rca
from tests.bot.slack_harness import CHANNEL, slack_secrets
from tests.bot.test_slack_post_once import PATIENT, slack_of_today
from tests.fakes.llm_servers import ScriptedLLMServer, answer
from tests.fakes.slack_api import FakeSlackApi
from tests.support.app import RunningApp, run_app
from tests.support.payloads import alert, group
from tests.support.small_disk import SmallDisk
from tests.support.waiting import eventually

LLM_THINKS_S = 6.0  # the first investigation is at the model while the disk fills
FULL = "writes failing: OperationalError: database or disk is full"


@dataclass
class Alertmanager:
    app: RunningApp
    answers: dict[str, int] = field(default_factory=dict)  # fingerprint -> last status
    refusals: list[tuple[int, str]] = field(default_factory=list)  # status, error of each 5xx
    readiness: list[tuple[int, str]] = field(default_factory=list)

    async def send(self, group_key: str, fingerprint: str) -> int:
        payload = group(group_key, [alert(fingerprint, starts_at=STARTS)])
        response = await self.app.client.post("/webhooks/alertmanager", json=payload)
        self.answers[fingerprint] = response.status_code
        if response.status_code >= 500:
            is_json = response.headers.get("content-type") == "application/json"
            error = response.json().get("error") if is_json else response.text
            self.refusals.append((response.status_code, error))
        return response.status_code

    async def ready(self) -> tuple[int, str]:
        response = await self.app.client.get("/readyz")
        self.readiness.append((response.status_code, response.json()["checks"]["store"]))
        return self.readiness[-1]


def card_posts(slack: FakeSlackApi) -> list[str | None]:
    """Every card Slack accepted (a message that is not a thread reply): the key in its
    metadata."""
    return [
        (call.params.get("metadata") or {}).get("event_payload", {}).get("key")
        for call in slack.calls("chat.postMessage", ok=True)
        if not call.params.get("thread_ts")
    ]


async def test_a_full_disk_then_space_freed(small_disk: SmallDisk, tmp_path: Path) -> None:
    database = small_disk.path / "firebreak.db"
    with ScriptedLLMServer("openai") as llm, slack_of_today() as slack:
        llm.script(answer(rca(), delay_s=LLM_THINKS_S))
        llm.default = answer(rca())
        config = config_for(
            f"sqlite+aiosqlite:///{database}",
            tmp_path,
            llm,
            slack={"mode": "http", "api_base_url": slack.base_url, "channel": CHANNEL},
            investigation={"checkpoint_path": f"{database}.checkpoints"},
        )
        parts = Parts(slack=SlackOptions(outbox=PATIENT))
        async with run_app(config, slack_secrets(), parts) as app:
            am = Alertmanager(app)
            assert await am.send("g1", "a") == 200  # incident 1: card, then investigation
            await eventually(lambda: _asked(llm), within=30)
            await eventually(lambda: _cards(slack, 1), within=10)

            slack.outage = True  # incident 2's card is tried, and refused, before the disk fills
            assert await am.send("g2", "b") == 200
            await eventually(lambda: _refused_posts(slack), within=10)
            async with small_disk.full() as filled:
                slack.outage = False
                refused = await _until_writes_fail(am)
                await asyncio.sleep(LLM_THINKS_S)  # the model answers; its run cannot write it
                status, reason = await am.ready()
                posts_while_full = len(card_posts(slack))
            await eventually(lambda: _ready(am), within=20)
            for fingerprint in refused:  # what Alertmanager did not get a 2xx for, again
                assert await am.send("g1", fingerprint) == 200
            await app.runtime.investigations.wait_idle()  # held runs resumed and finished
            first = (await analysed(app, 1))["analysis"]
            types = await event_types(app, 1)
            await eventually(lambda: _cards(slack, 2), within=20)
            assert app.runtime.outbox is not None
            assert await app.runtime.outbox.idle(20)

    assert filled > 0 and refused
    assert set(am.refusals) == {(503, "store_unavailable")}
    assert (status, reason[: len(FULL)]) == (503, FULL), am.readiness
    assert posts_while_full <= 2  # incident 2's card at most once, recorded once space is back
    keys = card_posts(slack)
    assert len(keys) == 2, f"one card per incident, each posted once: {len(keys)} posted"
    assert None not in keys and len(set(keys)) == 2
    assert all(
        m["metadata"]["event_type"] == CARD_EVENT
        for m in slack.messages(CHANNEL)
        if m.get("thread_ts") in (None, m["ts"])
    )
    assert first["execution_status"] == "COMPLETED"
    assert types.count("AI_ANALYSIS_RETRIED") == 1, types
    assert "AI_ANALYSIS_FAILED" not in types
    assert set(am.answers.values()) == {200}
    print(
        f"\nfilled {filled / 1e6:.1f} MB; {len(refused)} alerts answered 503 while full; "
        f"/readyz: {reason}"
    )


async def _until_writes_fail(am: Alertmanager) -> list[str]:
    """More alerts until three are refused (Alertmanager will send those again)."""
    refused: list[str] = []
    deadline = time.monotonic() + 30
    n = 0
    while time.monotonic() < deadline:
        n += 1
        fingerprint = f"full-{n}"
        if await am.send("g1", fingerprint) >= 500:
            refused.append(fingerprint)
        if len(refused) >= 3:
            return refused
        await asyncio.sleep(0.05)
    raise AssertionError("writes never failed")


async def _asked(llm: ScriptedLLMServer) -> bool:
    return llm.chat_calls >= 1


async def _cards(slack: FakeSlackApi, count: int) -> bool:
    return len(card_posts(slack)) >= count


async def _refused_posts(slack: FakeSlackApi) -> bool:
    return any(c.status == 503 for c in slack.calls("chat.postMessage"))


async def _ready(am: Alertmanager) -> bool:
    return (await am.ready()) == (200, "ok")
