"""The RCA's thread gets a PNG chart of the alert's own metric, end to end: the sample alert is
posted to the webhook, the real investigation (offline analyzer over the shipped sample log and
a Prometheus-compatible server holding the sample series) stores its analysis, the outbox
posts the RCA and then uploads the chart with slack-sdk's `files_upload_v2` into the fake
Slack. Also: an upload that fails never holds the RCA back, is retried, and is given up after
`max_attempts`; the card's "Open in Firebreak" button opens the incident's page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import structlog
from pydantic import SecretStr
from sqlalchemy import select

from firebreak.bot.messages.incident import ACTION_OPEN_PAGE
from firebreak.bot.slack_app import SlackOptions
from firebreak.bot.slack_outbox import KIND_CHART, OutboxSettings
from firebreak.components import Parts
from firebreak.config import Secrets
from firebreak.sample import SampleStack, materialise, serve_sample_prometheus
from firebreak.store.models import SlackOutbox
from tests.bot.slack_harness import CHANNEL, FAST, slack_secrets
from tests.conftest import make_config
from tests.fakes.slack_api import UPLOAD_METHOD, FakeSlackApi
from tests.support.app import RunningApp, run_app
from tests.support.slack_signing import block_actions

PNG = b"\x89PNG\r\n\x1a\n"
COMPLETE = "files.completeUploadExternal"


@dataclass
class Charting:
    app: RunningApp
    slack: FakeSlackApi
    sample: SampleStack

    async def alert(self) -> int:
        response = await self.app.client.post("/webhooks/alertmanager", json=self.sample.payload)
        assert response.status_code == 200, response.text
        return int(response.json()["incident_id"])

    async def card_ts(self) -> str:
        post, *_ = await self.slack.await_calls("chat.postMessage", timeout=10)
        assert not post.params.get("thread_ts")  # the card comes first
        return str(post.response["ts"])

    async def rca(self, card_ts: str) -> dict:
        async def posted() -> dict | None:
            for message in self.slack.thread(CHANNEL, card_ts):
                if "Root cause" in (message.get("text") or ""):
                    return message
            return None

        return await wait(posted, within=30)

    def thread_replies(self, card_ts: str) -> list[dict]:
        return [m for m in self.slack.thread(CHANNEL, card_ts) if m["ts"] != card_ts]

    async def file_rows(self) -> list[SlackOutbox]:
        async with self.app.runtime.engine.connect() as conn:
            rows = await conn.execute(select(SlackOutbox).where(SlackOutbox.kind == KIND_CHART))
            return list(rows)


async def wait(probe, within: float = 15):
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        result = probe()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached within {within}s")


@asynccontextmanager
async def charting(
    store_url: str,
    tmp_path: Path,
    *,
    settings: OutboxSettings = FAST,
    secrets: Secrets | None = None,
    public_url: str = "https://firebreak.example.com",
) -> AsyncIterator[Charting]:
    sample = materialise(tmp_path, datetime.now(UTC))
    async with serve_sample_prometheus(sample.series) as prometheus_url:
        with FakeSlackApi() as slack:
            config = make_config(
                store_url,
                server={"public_url": public_url},
                slack={"mode": "http", "api_base_url": slack.base_url, "channel": CHANNEL},
                llm={"provider": "offline"},
                sources=sample.sources(prometheus_url),
            )
            parts = Parts(slack=SlackOptions(outbox=settings))
            async with run_app(config, secrets or slack_secrets(), parts) as app:
                yield Charting(app, slack, sample)


async def test_alert_to_rca_to_png_chart_in_the_thread(store_url: str, tmp_path: Path) -> None:
    async with charting(store_url, tmp_path) as rig:
        with structlog.testing.capture_logs() as logs:
            incident_id = await rig.alert()
            card_ts = await rig.card_ts()
            rca = await rig.rca(card_ts)
            (complete,) = await rig.slack.await_calls(COMPLETE, timeout=30)
            assert await rig.app.runtime.outbox.idle(10)

        # the three steps of files_upload_v2, after the RCA reply
        methods = rig.slack.methods_called()
        assert methods.index("files.getUploadURLExternal") < methods.index(UPLOAD_METHOD)
        assert complete.ok and complete.params["channel_id"] == CHANNEL
        assert complete.params["thread_ts"] == card_ts
        rca_post = next(
            c for c in rig.slack.calls("chat.postMessage") if "Root cause" in c.params["text"]
        )
        assert rca_post.params["thread_ts"] == card_ts and rca_post.at < complete.at
        (shared,) = complete.response["files"]
        content = rig.slack.uploaded(shared["id"])
        assert content.startswith(PNG) and len(content) > 5_000
        assert shared["name"] == f"incident-{incident_id}-chart.png"
        assert shared["title"] == 'http_requests_total{code=~"5.."}'  # the alert's own metric
        thread = rig.slack.thread(CHANNEL, card_ts)
        assert thread.index(rca) < next(i for i, m in enumerate(thread) if m.get("files"))

        # the investigation said it finished, and how it went
        (finished,) = [e for e in logs if e["event"] == "investigation finished"]
        assert finished["incident_id"] == incident_id and finished["status"] == "done"
        assert finished["confidence"] == 75 and finished["seconds"] >= 0
        assert finished["execution_status"] == "COMPLETED"

        metrics = (await rig.app.client.get("/metrics")).text
        assert 'firebreak_investigation_duration_seconds_count{status="done"} 1.0' in metrics
        assert "firebreak_slack_outbox_pending 0.0" in metrics
        (row,) = await rig.file_rows()
        assert row.status == "done" and row.lane == f"files:{incident_id}"


async def test_a_failing_upload_never_holds_back_the_rca_and_is_retried(
    store_url: str, tmp_path: Path
) -> None:
    async with charting(store_url, tmp_path) as rig:
        rig.slack.http_error(UPLOAD_METHOD, 500, times=1)  # the bytes' POST fails once
        rig.slack.api_error(COMPLETE, "internal_error", times=1)  # then Slack is struggling
        await rig.alert()
        card_ts = await rig.card_ts()
        await rig.rca(card_ts)
        complete = await wait(lambda: rig.slack.calls(COMPLETE, ok=True), within=30)
        assert len(complete) == 1 and complete[0].params["thread_ts"] == card_ts
        assert len(rig.slack.calls(COMPLETE)) == 2 and len(rig.slack.calls(UPLOAD_METHOD)) == 3
        metrics = (await rig.app.client.get("/metrics")).text
        assert (
            'firebreak_slack_api_errors_total{error="internal_error",'
            'method="files.completeUploadExternal"} 1.0'
        ) in metrics


async def test_an_upload_slack_keeps_refusing_is_given_up_and_logged(
    store_url: str, tmp_path: Path
) -> None:
    settings = replace(FAST, max_attempts=2)
    async with charting(store_url, tmp_path, settings=settings) as rig:

        async def failed_rows() -> list[SlackOutbox]:
            return [row for row in await rig.file_rows() if row.status == "failed"]

        rig.slack.api_error("files.getUploadURLExternal", "missing_scope", times=10)
        with structlog.testing.capture_logs() as logs:
            incident_id = await rig.alert()
            card_ts = await rig.card_ts()
            await rig.rca(card_ts)
            rows = await wait(failed_rows, within=30)
        assert rows[0].attempts == 2 and "missing_scope" in (rows[0].last_error or "")
        (gave_up,) = [e for e in logs if e["event"] == "giving up on a Slack message"]
        assert gave_up["kind"] == KIND_CHART and gave_up["incident_id"] == incident_id
        assert rig.slack.calls(COMPLETE) == []
        # the incident's own lane went on: a resolution is said in the thread
        resolved = {**rig.sample.payload, "status": "resolved"}
        resolved["alerts"] = [
            {**a, "status": "resolved", "endsAt": datetime.now(UTC).isoformat()}
            for a in resolved["alerts"]
        ]
        response = await rig.app.client.post("/webhooks/alertmanager", json=resolved)
        assert response.status_code == 200
        await wait(lambda: any("resolved" in m["text"] for m in rig.thread_replies(card_ts)))
        metrics = (await rig.app.client.get("/metrics")).text
        assert (
            'firebreak_slack_api_errors_total{error="missing_scope",'
            'method="files.getUploadURLExternal"} 2.0'
        ) in metrics


async def test_open_in_firebreak_opens_the_page_and_its_click_is_acknowledged(
    store_url: str, tmp_path: Path
) -> None:
    secrets = slack_secrets().model_copy(update={"api_token": SecretStr("api-token-1")})
    async with charting(store_url, tmp_path, secrets=secrets) as rig:
        incident_id = await rig.alert()
        card_ts = await rig.card_ts()
        card = rig.slack.message(CHANNEL, card_ts)
        (actions,) = [b for b in card["blocks"] if b.get("block_id") == "incident_actions"]
        (button,) = [e for e in actions["elements"] if e["action_id"] == ACTION_OPEN_PAGE]
        link = urlsplit(button["url"])
        assert f"{link.scheme}://{link.netloc}" == "https://firebreak.example.com"
        assert link.path == f"/incidents/{incident_id}" and link.query.startswith("token=")

        # the signed link opens the page on this server (and trades the token for a session)
        page = await rig.app.client.get(f"{link.path}?{link.query}", follow_redirects=True)
        assert page.status_code == 200 and "HighErrorRate" in page.text

        # Slack posts block_actions for a URL button too: acknowledged, nothing else happens
        await rig.slack.await_calls(COMPLETE, timeout=30)  # the RCA and its chart are out
        assert await rig.app.runtime.outbox.idle(10)
        before = len(rig.slack.calls())
        body, headers = block_actions(ACTION_OPEN_PAGE, "", message_ts=card_ts)
        response = await rig.app.client.post("/slack/events", content=body, headers=headers)
        assert response.status_code == 200
        assert await rig.app.runtime.outbox.idle(10)
        assert [c.method for c in rig.slack.calls()[before:] if c.method != "chat.update"] == []
