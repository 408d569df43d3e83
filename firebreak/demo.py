"""`firebreak demo`: the whole product on this machine, with no network and no tokens.

Everything runs for real, on loopback: the app under uvicorn, the SQLite store in a temporary
directory, the Alertmanager webhook (an HTTP POST of the sample payload), the LangGraph
investigation over the sample log and a Prometheus-compatible server holding the sample
series, the escalation ladder (3-second levels), and an Acknowledge click sent to
`/slack/events` signed exactly as Slack signs it. Slack itself is the console: what the bot
would post is printed. The offline analyzer answers, unless an Ollama answers on localhost.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import uvicorn
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table
from slack_sdk.signature import SignatureVerifier

from firebreak.app import create_app
from firebreak.bot.slack_app import SlackOptions
from firebreak.components import Parts
from firebreak.config import Config, Secrets
from firebreak.sample import materialise, serve_sample_prometheus
from firebreak.store.schemas import IncidentOut

OLLAMA = "http://localhost:11434"
ON_CALL = "U0ONCALL1"
LEADS = "S0SRELEADS"
LEVEL_TIMEOUT_S = 3
EVENT_STYLE = {
    "INCIDENT_CREATED": "bold red",
    "ESCALATED": "yellow",
    "ACKNOWLEDGED": "bold green",
    "ROOT_CAUSE_GENERATED": "bold cyan",
    "AI_ANALYSIS_FAILED": "red",
}


async def run_demo(console: Console, *, offline: bool = False) -> IncidentOut:
    """Play the story; returns the incident as it ends. `offline` skips looking for Ollama:
    the offline analyzer answers (scripts/readme_demo.py needs the same story every run)."""
    with tempfile.TemporaryDirectory(prefix="firebreak-demo-") as tmp:
        workdir = Path(tmp)
        sample = materialise(workdir, datetime.now(UTC))
        async with serve_sample_prometheus(sample.series) as prometheus_url:
            llm = {"provider": "offline"} if offline else await _local_llm()
            config = _config(workdir, sample, prometheus_url, llm)
            signing_secret = secrets.token_hex(16)
            demo_secrets = Secrets(slack_signing_secret=SecretStr(signing_secret))
            async with _serving(config, demo_secrets, console) as client:
                return await _story(console, client, config, sample.payload, signing_secret)


async def _story(
    console: Console,
    client: httpx.AsyncClient,
    config: Config,
    payload: dict[str, Any],
    signing_secret: str,
) -> IncidentOut:
    provider = config.llm.provider
    console.rule("[bold]1. Alertmanager posts a firing alert")
    response = await client.post("/webhooks/alertmanager", json=payload)
    response.raise_for_status()
    incident_id = response.json()["incident_id"]
    console.print(f"POST /webhooks/alertmanager → {response.status_code} {response.json()}")

    console.rule(f"[bold]2. The agents investigate ({provider} analyzer)")
    printed = await _follow_timeline(console, client, incident_id, until={"ROOT_CAUSE_GENERATED"})

    console.rule(f"[bold]3. Nobody acknowledges within {LEVEL_TIMEOUT_S} s: the ladder climbs")
    printed = await _follow_timeline(
        console, client, incident_id, until={"ESCALATED"}, count=2, printed=printed
    )

    console.rule(f"[bold]4. <@{ON_CALL}> clicks Acknowledge (a signed Slack request)")
    response = await _click(client, signing_secret, incident_id, "incident_ack", ON_CALL)
    console.print(f"POST /slack/events (block_actions) → {response.status_code}")
    await _follow_timeline(console, client, incident_id, until={"ACKNOWLEDGED"}, printed=printed)
    await asyncio.sleep(0.5)  # let the outbox print the updated card

    console.rule("[bold]5. The audit timeline")
    timeline = (await client.get(f"/api/v1/incidents/{incident_id}/timeline")).json()
    console.print(_timeline_table(timeline))
    shown = (await client.get(f"/api/v1/incidents/{incident_id}")).json()
    return IncidentOut.model_validate(shown)


async def _follow_timeline(
    console: Console,
    client: httpx.AsyncClient,
    incident_id: int,
    *,
    until: set[str],
    count: int = 1,
    printed: int = 0,
    within_s: float = 30,
) -> int:
    """Print timeline events as they happen until `count` events of a type in `until`."""
    deadline = time.monotonic() + within_s
    with console.status("waiting…", spinner="dots"):
        while time.monotonic() < deadline:
            events = (await client.get(f"/api/v1/incidents/{incident_id}/timeline")).json()
            for event in events[printed:]:
                style = EVENT_STYLE.get(event["type"], "dim")
                console.print(f"  [{style}]{event['type']:<22}[/] {event['message']}")
            printed = len(events)
            if sum(event["type"] in until for event in events) >= count:
                return printed
            await asyncio.sleep(0.1)
    raise TimeoutError(f"the demo waited {within_s}s for {', '.join(sorted(until))}")


async def _click(
    client: httpx.AsyncClient, signing_secret: str, incident_id: int, action: str, user: str
) -> httpx.Response:
    """A `block_actions` request shaped and signed exactly as Slack sends it."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": "oncall", "name": "oncall", "team_id": "T0DEMO"},
        "api_app_id": "A0FIREBREAK",
        "token": "verification-token-unused",
        "container": {"type": "message", "message_ts": "0", "channel_id": "C0INCIDENTS"},
        "trigger_id": "0.0.demo",
        "team": {"id": "T0DEMO", "domain": "demo"},
        "channel": {"id": "C0INCIDENTS", "name": "incidents"},
        "actions": [
            {
                "action_id": action,
                "block_id": "incident_actions",
                "type": "button",
                "value": str(incident_id),
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    body = urlencode({"payload": json.dumps(payload)})
    timestamp = str(int(time.time()))
    signature = SignatureVerifier(signing_secret).generate_signature(timestamp=timestamp, body=body)
    assert signature is not None, "a signing secret signs"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
    }
    return await client.post("/slack/events", content=body, headers=headers)


def _timeline_table(timeline: list[dict[str, Any]]) -> Table:
    table = Table(show_lines=False, header_style="bold")
    for column in ("at", "type", "actor", "message"):
        table.add_column(column, overflow="fold")
    for event in timeline:
        style = EVENT_STYLE.get(event["type"], "")
        table.add_row(
            event["at"][11:23],
            f"[{style}]{event['type']}[/]" if style else event["type"],
            event["actor"],
            event["message"][:120],
        )
    return table


def _config(workdir: Path, sample: Any, prometheus_url: str, llm: dict[str, Any]) -> Config:
    return Config(
        store={"url": f"sqlite+aiosqlite:///{workdir / 'demo.db'}"},
        slack={"mode": "console", "channel": "C0INCIDENTS"},
        llm=llm,
        sources=sample.sources(prometheus_url),
        investigation={"checkpoint_path": str(workdir / "checkpoints.db")},
        escalation={
            "policies": [
                {
                    "name": "demo",
                    "levels": [
                        {"notify": [ON_CALL], "timeout_s": LEVEL_TIMEOUT_S},
                        {"notify": [LEADS], "timeout_s": LEVEL_TIMEOUT_S},
                    ],
                }
            ]
        },
    )


async def _local_llm() -> dict[str, Any]:
    """Ollama when one answers on localhost with a model pulled, else the offline analyzer."""
    try:
        async with httpx.AsyncClient(timeout=0.5) as client:
            models = (await client.get(f"{OLLAMA}/api/tags")).json().get("models") or []
    except (httpx.HTTPError, ValueError):
        models = []
    if not models:
        return {"provider": "offline"}
    return {"provider": "ollama", "model": models[0]["name"], "base_url": OLLAMA, "timeout_s": 60}


@asynccontextmanager
async def _serving(
    config: Config, secrets: Secrets, console: Console
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(config, secrets, Parts(slack=SlackOptions(console=console)))
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=0, lifespan="on", log_config=None, access_log=False
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]  # port 0: the OS chose a free one
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        await task
