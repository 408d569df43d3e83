"""Shared set-up for the Slack tests: the real app on uvicorn, a fake Slack, test doubles for
the *other* components' ports (investigations, escalations) — never for the Slack code."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import select

from firebreak.bot.console import render_text
from firebreak.bot.slack_app import SlackOptions
from firebreak.bot.slack_outbox import OutboxNotifier, OutboxSettings
from firebreak.components import Parts
from firebreak.config import Secrets
from firebreak.incidents.events import Change, IncidentEvent
from firebreak.incidents.notices import RcaReady
from firebreak.incidents.ports import Decision, Escalation, RemediationVote
from firebreak.runtime import Runtime
from firebreak.store import incidents
from firebreak.store.models import SlackMessage
from firebreak.store.schemas import Analysis, TimelineEventOut
from tests.conftest import make_config
from tests.fakes.slack_api import DEFAULT_TOKEN, FakeSlackApi
from tests.support.analyses import make_analysis
from tests.support.app import RunningApp, run_app
from tests.support.payloads import alert, group
from tests.support.slack_signing import SIGNING_SECRET

CHANNEL = "C0INCIDENTS"
FAST = OutboxSettings(backoff_initial_s=0.05, backoff_max_s=0.3, poll_s=0.1, max_attempts=3)


@dataclass
class FakeInvestigations:
    """Investigations port double: ``request`` starts a long task, like a real LLM run."""

    run_for_s: float = 30.0
    requests: list[tuple[int, str, str]] = field(default_factory=list)
    questions: list[tuple[int, str, str]] = field(default_factory=list)
    decisions: list[tuple[int, bool, str, float]] = field(default_factory=list)
    approvals: list[tuple[str | None, str | None]] = field(default_factory=list)  # run, digest
    tasks: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    answer_delay_s: float = 0.0

    def on_event(self, event: IncidentEvent) -> None:
        if event.change == Change.OPENED:
            self.request(event.incident_id, actor=event.actor, reason="opened")

    async def wait_idle(self) -> None:
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    def request(self, incident_id: int, *, actor: str, reason: str) -> bool:
        running = self.tasks.get(incident_id)
        if running is not None and not running.done():
            return False
        self.requests.append((incident_id, actor, reason))
        self.tasks[incident_id] = asyncio.get_running_loop().create_task(
            asyncio.sleep(self.run_for_s)
        )
        return True

    async def answer_question(self, incident_id: int, question: str, *, actor: str) -> str:
        self.questions.append((incident_id, question, actor))
        await asyncio.sleep(self.answer_delay_s)
        return f"The root cause of #{incident_id} is a bad deploy (you asked: {question})."

    async def decide_remediation(self, vote: RemediationVote) -> Decision:
        self.decisions.append((vote.incident_id, vote.approve, vote.actor, vote.delay_s))
        self.approvals.append((vote.approval, vote.digest))
        return "approved" if vote.approve else "rejected"

    def cancel(self) -> None:
        for task in self.tasks.values():
            task.cancel()


@dataclass
class FakeEscalations:
    calls: list[tuple[int, str]] = field(default_factory=list)
    delay_s: float = 0.0

    async def start(self, incident_id: int) -> None:
        return None

    async def escalate_now(self, incident_id: int, *, actor: str) -> Escalation:
        self.calls.append((incident_id, actor))
        await asyncio.sleep(self.delay_s)
        return Escalation("paged", len(self.calls), ("U0ONCALL",))


@dataclass
class SlackRig:
    app: RunningApp
    slack: FakeSlackApi
    investigations: FakeInvestigations | None
    escalations: FakeEscalations | None

    @property
    def runtime(self) -> Runtime:
        return self.app.runtime

    @property
    def outbox(self) -> OutboxNotifier:
        assert self.app.runtime.outbox is not None
        return self.app.runtime.outbox

    @property
    def client(self) -> httpx.AsyncClient:
        return self.app.client

    async def post(self, signed: tuple[bytes, dict[str, str]]) -> httpx.Response:
        body, headers = signed
        return await self.client.post("/slack/events", content=body, headers=headers)

    async def timed_post(
        self, signed: tuple[bytes, dict[str, str]]
    ) -> tuple[httpx.Response, float]:
        started = time.perf_counter()
        response = await self.post(signed)
        return response, time.perf_counter() - started

    async def alert(self, group_key: str, *fingerprints: str, status: str = "firing") -> int:
        payload = group(group_key, [alert(f, status=status) for f in fingerprints])
        response = await self.client.post("/webhooks/alertmanager", json=payload)
        assert response.status_code == 200, response.text
        incident_id = response.json()["incident_id"]
        assert incident_id is not None
        return incident_id

    async def card_ts(self, incident_id: int, within: float = 10) -> str:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            async with self.runtime.engine.connect() as conn:
                ts = await conn.scalar(
                    select(SlackMessage.ts).where(
                        SlackMessage.incident_id == incident_id, SlackMessage.purpose == "card"
                    )
                )
            if ts:
                return ts
            await asyncio.sleep(0.02)
        raise AssertionError(f"incident {incident_id} got no card within {within}s")

    async def timeline(self, incident_id: int) -> list[TimelineEventOut]:
        async with self.runtime.engine.connect() as conn:
            events = await incidents.timeline(conn, incident_id)
        assert events is not None
        return events

    async def idle(self) -> None:
        assert self.runtime.outbox is not None
        assert await self.runtime.outbox.idle(10)

    async def card_text(self, ts: str, contains: str, within: float = 10) -> str:
        """The card's rendered text once it contains ``contains``."""
        deadline = time.monotonic() + within
        text = ""
        while time.monotonic() < deadline:
            text = render_text(self.slack.message(CHANNEL, ts).get("blocks") or [])
            if contains in text:
                return text
            await asyncio.sleep(0.02)
        raise AssertionError(f"card never showed {contains!r}; last:\n{text}")

    async def wait(self, probe: Any, within: float = 10) -> Any:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            result = probe()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(0.02)
        raise AssertionError(f"condition not reached within {within}s")

    async def save_analysis(self, incident_id: int, run_id: str, analysis: Analysis) -> None:
        """Store an analysis as the investigation's last step does, before it tells anyone."""
        await self.runtime.writer.run(
            partial(
                incidents.save_analysis,
                incident_id=incident_id,
                analysis=analysis,
                evidence={},
                run_id=run_id,
            )
        )

    async def publish_analysis(
        self, incident_id: int, run_id: str, root_cause: str = "The v2.4.1 deploy broke checkout"
    ) -> str:
        """What the investigation's last step does (store the analysis, tell the thread), for
        tests of what people do with it; returns the RCA reply's ts once Slack has it."""
        await self.save_analysis(incident_id, run_id, make_analysis(root_cause=root_cause))
        notice = RcaReady(run_id=run_id)
        self.runtime.notifier.tell(incident_id, notice)

        async def posted() -> str | None:
            async with self.runtime.engine.connect() as conn:
                found = await incidents.slack_message(conn, incident_id, notice.key)
            return found[1] if found else None

        return await self.wait(posted)

    def card_posts(self) -> list[Any]:
        return [
            c
            for c in self.slack.calls("chat.postMessage", ok=True)
            if not c.params.get("thread_ts")
        ]


def slack_secrets(api_token: str | None = None) -> Secrets:
    return Secrets(
        slack_bot_token=SecretStr(DEFAULT_TOKEN),
        slack_signing_secret=SecretStr(SIGNING_SECRET),
        api_token=SecretStr(api_token) if api_token else None,
    )


@asynccontextmanager
async def slack_rig(
    store_url: str,
    *,
    mode: str = "http",
    investigations: FakeInvestigations | None = None,
    escalations: FakeEscalations | None = None,
    settings: OutboxSettings = FAST,
    slack: FakeSlackApi | None = None,
    with_doubles: bool = True,
    max_inline_wait_s: float = 10.0,
    api_token: str | None = None,
    **sections: Any,
) -> AsyncIterator[SlackRig]:
    """The app with a fake Slack; `sections` are more configuration (`access`, `llm`…);
    `api_token` closes the API and the pages as `FIREBREAK_API_TOKEN` does."""
    async with AsyncExitStack() as stack:
        if slack is None:
            slack = stack.enter_context(FakeSlackApi())
        if with_doubles:
            investigations = investigations or FakeInvestigations()
            escalations = escalations or FakeEscalations()
        config = make_config(
            store_url,
            slack={"mode": mode, "api_base_url": slack.base_url, "channel": CHANNEL},
            **sections,
        )
        parts = Parts(
            slack=SlackOptions(outbox=settings, max_inline_wait_s=max_inline_wait_s),
            investigations=investigations,
            escalations=escalations,
        )
        if investigations is not None:
            stack.callback(investigations.cancel)
        app = await stack.enter_async_context(run_app(config, slack_secrets(api_token), parts))
        yield SlackRig(app, slack, investigations, escalations)
