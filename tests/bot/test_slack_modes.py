"""Console mode, Socket Mode start-up and the app manifest."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr
from rich.console import Console

from firebreak.bot.slack_app import SlackOptions
from firebreak.bot.slack_transport import ConsoleTransport, ThreadFile
from firebreak.cli import main
from firebreak.components import Parts
from firebreak.config import Secrets
from firebreak.incidents.notices import YouArePaged
from tests.bot.slack_harness import FAST, slack_secrets
from tests.conftest import make_config
from tests.fakes.slack_api import FakeSlackApi
from tests.support.app import run_app
from tests.support.payloads import alert, group


async def test_console_mode_prints_cards_and_replies_without_network(store_url: str) -> None:
    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=False, color_system=None)
    parts = Parts(slack=SlackOptions(outbox=FAST, console=console))
    with FakeSlackApi() as slack:
        config = make_config(store_url, slack={"mode": "console", "api_base_url": slack.base_url})
        async with run_app(config, Secrets(), parts) as app:
            response = await app.client.post(
                "/webhooks/alertmanager", json=group("g1", [alert("a")])
            )
            incident_id = response.json()["incident_id"]
            notifier = app.runtime.outbox
            assert notifier is not None
            notifier.say_in_thread(incident_id, "RCA: the disk is full", purpose="rca")
            notifier.tell_user(
                "U0ONCALL1", YouArePaged(incident_id=incident_id, level=1, title="x")
            )
            assert await notifier.idle(10)
            ack = await app.client.post(
                "/webhooks/alertmanager", json=group("g1", [alert("a", status="resolved")])
            )
            assert ack.status_code == 200
            await asyncio.sleep(0.3)
            assert await notifier.idle(10)
        assert slack.calls() == []
    text = out.getvalue()
    assert f"#{incident_id} HighErrorRate" in text
    assert "[ 👀 Acknowledge ]" in text
    assert "RCA: the disk is full" in text and "You are paged" in text
    assert "Resolved" in text


async def test_console_renders_mrkdwn_and_says_where_an_upload_went(tmp_path: Path) -> None:
    out = io.StringIO()
    transport = ConsoleTransport(Console(file=out, width=300, force_terminal=True))
    text = "*Root cause*: `db-pool` exhausted, see <https://grafana.example.com/d/1|board> <@U0BOB>"
    await transport.post("C0INCIDENTS", text, None, "1.000001")
    await transport.upload(
        "C0INCIDENTS",
        "1.000001",
        ThreadFile(filename="incident-1-chart.png", title="errors_total", content=b"\x89PNG-1"),
    )
    shown = out.getvalue()
    assert "\x1b[1mRoot cause" in shown and "*Root cause*" not in shown  # bold, not asterisks
    assert "`" not in shown and "<https" not in shown and "<@" not in shown
    assert "board (https://grafana.example.com/d/1)" in shown and "@U0BOB" in shown
    plain = re.sub(r"\x1b\[[0-9;]*m|\x1b\]8;[^\x1b]*\x1b\\", "", shown)  # styles, links
    written = re.search(r"incident-1-chart\.png written to (\S+\.png)", plain)
    assert written is not None, plain
    path = Path(written.group(1))
    try:
        assert await asyncio.to_thread(path.read_bytes) == b"\x89PNG-1"
    finally:
        await asyncio.to_thread(path.unlink)


async def test_socket_mode_starts_while_slack_is_unreachable(store_url: str) -> None:
    secrets = Secrets(
        slack_bot_token=slack_secrets().slack_bot_token, slack_app_token=SecretStr("xapp-1-test")
    )
    with FakeSlackApi() as slack:
        config = make_config(store_url, slack={"mode": "socket", "api_base_url": slack.base_url})
        async with run_app(config, secrets, Parts(slack=SlackOptions(outbox=FAST))) as app:
            ready = (await app.client.get("/readyz")).json()
            assert ready["checks"]["slack"] == "ok"
            assert ready["checks"]["slack_socket"] == "socket mode not connected"
            response = await app.client.post("/slack/events", content=b"{}")
            assert response.status_code == 404  # events come over the socket
            response = await app.client.post(
                "/webhooks/alertmanager", json=group("g1", [alert("a")])
            )
            assert response.status_code == 200
            await slack.await_calls("chat.postMessage")
        assert slack.calls("apps.connections.open")


@pytest.mark.parametrize(("mode", "warned"), [("http", True), ("socket", False)])
def test_slack_manifest_warns_when_slack_cannot_reach_the_url(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    warned: bool,
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"slack: {{mode: {mode}}}\n")  # server.public_url left at its default
    monkeypatch.delenv("FIREBREAK_CONFIG", raising=False)
    assert main(["slack-manifest", "--config", str(path)]) == 0
    captured = capsys.readouterr()
    assert yaml.safe_load(captured.out)["features"]["slash_commands"]
    assert ("server.public_url" in captured.err) is warned


@pytest.mark.parametrize("mode", ["http", "socket"])
def test_slack_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "server: {public_url: 'https://firebreak.example.com'}\n"
        f"slack: {{mode: {mode}, command: /sev}}\n"
    )
    monkeypatch.delenv("FIREBREAK_CONFIG", raising=False)
    assert main(["slack-manifest", "--config", str(path)]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err  # a public URL: nothing to warn about
    manifest = yaml.safe_load(captured.out)
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/sev"
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    for scope in (
        "chat:write",
        "commands",
        "files:write",  # the RCA's chart
        "app_mentions:read",
        "im:write",
        "users:read",
        "users:read.email",  # on-call addresses resolved with users.lookupByEmail
        "usergroups:read",
        "channels:history",  # an earlier card found by its metadata
        "groups:history",
    ):
        assert scope in scopes
    settings = manifest["settings"]
    assert settings["event_subscriptions"]["bot_events"] == ["app_mention"]
    assert settings["interactivity"]["is_enabled"] is True
    url = "https://firebreak.example.com/slack/events"
    if mode == "http":
        assert settings["socket_mode_enabled"] is False
        assert command["url"] == url
        assert settings["interactivity"]["request_url"] == url
        assert settings["event_subscriptions"]["request_url"] == url
    else:
        assert settings["socket_mode_enabled"] is True
        assert "url" not in command and "request_url" not in settings["interactivity"]


async def test_console_keeps_shared_files_in_one_place(tmp_path: Path) -> None:
    out = io.StringIO()
    transport = ConsoleTransport(Console(file=out, width=300), files_dir=tmp_path / "files")
    for content in (b"\x89PNG-1", b"\x89PNG-2"):  # shared twice, e.g. after re-investigating
        chart = ThreadFile(filename="incident-1-chart.png", title="errors", content=content)
        await transport.upload("C0INCIDENTS", "1.000001", chart)
    kept = list((tmp_path / "files").iterdir())
    assert [p.name for p in kept] == ["incident-1-chart.png"]
    assert kept[0].read_bytes() == b"\x89PNG-2"
    assert f"written to {tmp_path / 'files' / 'incident-1-chart.png'}" in out.getvalue()
