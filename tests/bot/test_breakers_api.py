"""`GET /api/v1/breakers` and `POST /api/v1/breakers/{name}/open|close|reset` over real HTTP,
with the forced state stored for the other replicas."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from firebreak.config import Secrets
from firebreak.store.breakers import read_overrides
from firebreak.tools.errors import CircuitOpenError
from tests.conftest import make_config
from tests.support.app import RunningApp, run_app

API_TOKEN = "api-t0ken-for-breakers"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
async def app(store_url: str) -> AsyncIterator[RunningApp]:
    """The composition root builds the board: the LLM's breaker and the Loki source's."""
    config = make_config(
        store_url,
        llm={
            "provider": "openai",
            "base_url": "http://127.0.0.1:9/v1",  # never called here
            "circuit_breaker": {"fail_max": 1},
        },
        sources={"logs": [{"type": "loki", "name": "loki", "url": "http://127.0.0.1:9"}]},
    )
    secrets = Secrets(api_token=SecretStr(API_TOKEN), openai_api_key=SecretStr("sk-test-key"))
    async with run_app(config, secrets) as running:
        yield running


async def ok() -> str:
    return "answer"


async def test_the_list_shows_every_breaker(app: RunningApp) -> None:
    response = await app.client.get("/api/v1/breakers", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == [
        {
            "name": name,
            "state": "closed",
            "failures": 0,
            "calls": 0,
            "failure_rate": 0.0,
            "opened_at": None,
            "forced": False,
            "consecutive_failures": 0,
        }
        for name in ("llm:openai", "loki")
    ]


async def test_open_close_reset_change_the_breaker_the_store_and_the_metrics(
    app: RunningApp,
) -> None:
    opened = await app.client.post("/api/v1/breakers/llm:openai/open", headers=AUTH)
    assert opened.status_code == 200
    body = opened.json()
    assert body["name"] == "llm:openai" and body["state"] == "open" and body["forced"] is True
    assert body["opened_at"] is not None
    breaker = app.runtime.breakers.get("llm:openai")  # type: ignore[union-attr]
    assert breaker is not None
    with pytest.raises(CircuitOpenError):
        await breaker.call(ok)
    async with app.runtime.engine.connect() as conn:
        stored = await read_overrides(conn)
    assert [(s.name, s.action, s.version, s.by) for s in stored] == [
        ("llm:openai", "open", 1, "api")
    ]
    metrics = (await app.client.get("/metrics")).text
    assert 'firebreak_circuit_breaker_state{dependency="llm:openai"} 2.0' in metrics
    assert (
        'firebreak_circuit_breaker_operator_actions_total{action="open",dependency="llm:openai"} '
        "1.0" in metrics
    )

    listed = (await app.client.get("/api/v1/breakers", headers=AUTH)).json()
    assert [b["state"] for b in listed] == ["open", "closed"]

    closed = await app.client.post("/api/v1/breakers/llm:openai/close", headers=AUTH)
    assert closed.status_code == 200 and closed.json()["state"] == "closed"
    assert await breaker.call(ok) == "answer"
    assert breaker.status().calls == 1  # close keeps the window
    reset = (await app.client.post("/api/v1/breakers/llm:openai/reset", headers=AUTH)).json()
    assert (reset["state"], reset["calls"], reset["forced"]) == ("closed", 0, False)
    metrics = (await app.client.get("/metrics")).text
    assert 'firebreak_circuit_breaker_state{dependency="llm:openai"} 0.0' in metrics


async def test_bad_requests_change_nothing(app: RunningApp) -> None:
    unknown = await app.client.post("/api/v1/breakers/nope/open", headers=AUTH)
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "not_found", "detail": "no circuit breaker 'nope'"}
    action = await app.client.post("/api/v1/breakers/loki/explode", headers=AUTH)
    assert action.status_code == 404 and "open, close, reset" in action.json()["detail"]
    no_token = await app.client.post("/api/v1/breakers/loki/open")
    assert no_token.status_code == 401
    wrong = await app.client.get("/api/v1/breakers", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert (await app.client.get("/api/v1/breakers/loki/open", headers=AUTH)).status_code == 405

    listed = (await app.client.get("/api/v1/breakers", headers=AUTH)).json()
    assert all(b["state"] == "closed" and not b["forced"] for b in listed)
    async with app.runtime.engine.connect() as conn:
        assert await read_overrides(conn) == []


async def test_an_action_the_store_cannot_take_changes_nothing(app: RunningApp) -> None:
    runtime = app.runtime
    await runtime.writer.stop()  # the store cannot take the action now
    response = await app.client.post("/api/v1/breakers/loki/open", headers=AUTH)
    assert response.status_code == 503
    assert response.json() == {"error": "store_unavailable", "detail": "not stored: RuntimeError"}
    assert runtime.breakers.get("loki").state == "closed"  # type: ignore[union-attr]
