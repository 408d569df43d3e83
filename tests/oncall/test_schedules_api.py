"""`GET /api/v1/schedules` and `GET /api/v1/schedules/{name}/oncall?at=` on a tiny Starlette
app under uvicorn on a loopback port, with the runtime attribute the handlers read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import httpx
import pytest
import uvicorn
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from starlette.applications import Starlette

from firebreak.bot.schedules_api import schedule_routes
from firebreak.config import Secrets
from firebreak.oncall.config import ScheduleConfig
from firebreak.oncall.schedules import OnCall
from tests.support.app import free_tcp_port

# A 24 h rotation that started a week ago at midnight UTC: the answer for "now" is known.
START = (datetime.now(UTC) - timedelta(days=7)).replace(hour=0, minute=0, second=0, microsecond=0)
SCHEDULES = [
    ScheduleConfig(
        name="payments-primary",
        timezone="Europe/Berlin",
        rotation={
            "users": ["U0ALICE", "U0BOB"],
            "start": "2026-11-30T09:00:00",
            "shift_hours": 168,
        },
    ),
    ScheduleConfig(
        name="sre",
        rotation={
            "users": ["U0CAROL", "U0DAVE"],
            "start": START.replace(tzinfo=None).isoformat(),
            "shift_hours": 24,
        },
    ),
]


async def serve(secrets: Secrets) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=schedule_routes())
    oncall = OnCall(SCHEDULES, registry=CollectorRegistry())
    app.state.runtime = SimpleNamespace(oncall=oncall, secrets=secrets)
    port = free_tcp_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            yield client
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    async for client in serve(Secrets()):
        yield client


async def test_list_says_who_is_on_call_and_who_is_next(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/schedules")
    assert response.status_code == 200
    payments, sre = response.json()
    assert payments["name"] == "payments-primary"
    assert set(payments) == {"name", "on_call", "next"}
    assert set(payments["on_call"]) == {"user", "since", "until"}
    assert set(payments["next"]) == {"user", "at"}
    assert payments["on_call"]["until"] == payments["next"]["at"]
    since = datetime.fromisoformat(sre["on_call"]["since"])
    day = (since - START).days  # 7, or 8 past midnight UTC
    assert day in (7, 8) and since == START + timedelta(days=day)
    today = START + timedelta(days=day)
    assert sre == {
        "name": "sre",
        "on_call": {
            "user": ["U0CAROL", "U0DAVE"][day % 2],
            "since": today.isoformat().replace("+00:00", "Z"),
            "until": (today + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
        },
        "next": {
            "user": ["U0CAROL", "U0DAVE"][(day + 1) % 2],
            "at": (today + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
        },
    }


@pytest.mark.parametrize(
    "at",
    ["2026-12-08T10:00:00+01:00", "2026-12-08T09:00:00Z", "2026-12-08T10:00:00 01:00"],
)
async def test_oncall_at_an_instant(api: httpx.AsyncClient, at: str) -> None:
    response = await api.get("/api/v1/schedules/payments-primary/oncall", params={"at": at})
    assert response.status_code == 200
    assert response.json() == {
        "user": "U0BOB",
        "since": "2026-12-07T08:00:00Z",
        "until": "2026-12-14T08:00:00Z",
    }


async def test_oncall_before_the_rotation_starts_is_nobody(api: httpx.AsyncClient) -> None:
    response = await api.get(
        "/api/v1/schedules/payments-primary/oncall", params={"at": "2026-11-01T00:00:00Z"}
    )
    assert response.json() == {"user": None, "since": None, "until": "2026-11-30T08:00:00Z"}


async def test_unknown_schedule_is_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/schedules/nope/oncall")
    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "detail": "no schedule 'nope' (schedules: payments-primary, sre)",
    }


@pytest.mark.parametrize(
    "at", ["yesterday", "2026-12-08T10:00:00", "2026-12-08", "9999-12-31T23:59:59Z", ""]
)
async def test_bad_at_is_400(api: httpx.AsyncClient, at: str) -> None:
    response = await api.get("/api/v1/schedules/payments-primary/oncall", params={"at": at})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_at" and body["detail"].startswith("at must be")


async def test_the_api_token_is_required_when_set() -> None:
    async for client in serve(Secrets(api_token=SecretStr("api-token"))):
        for path in ("/api/v1/schedules", "/api/v1/schedules/sre/oncall"):
            assert (await client.get(path)).status_code == 401
            authorized = await client.get(path, headers={"Authorization": "Bearer api-token"})
            assert authorized.status_code == 200
