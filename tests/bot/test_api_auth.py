"""One token check for the whole JSON API: every `/api/` route refuses a request without the
API token with the same 401 before its handler reads anything, and the endpoints that are open
or check their own credentials stay as they were."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr
from starlette.routing import Route

from firebreak.app import routes
from firebreak.config import Secrets
from tests.conftest import make_config
from tests.support.app import RunningApp, run_app

API_TOKEN = "api-t0ken-value"
UNAUTHORIZED = {"error": "unauthorized", "detail": "missing or wrong bearer token"}
PARAMS = {"incident_id": "1", "name": "payments", "action": "open"}


def api_requests() -> list[tuple[str, str]]:
    """(method, path) of every API route, its path parameters filled in."""
    found = []
    for route in routes():
        if isinstance(route, Route) and route.path.startswith("/api/"):
            method = sorted((route.methods or {"GET"}) - {"HEAD"})[0]
            found.append((method, route.path.format(**PARAMS)))
    return found


@pytest.fixture
async def app(store_url: str) -> AsyncIterator[RunningApp]:
    secrets = Secrets(api_token=SecretStr(API_TOKEN))
    async with run_app(make_config(store_url), secrets) as running:
        yield running


def test_the_api_has_its_routes() -> None:
    assert len(api_requests()) >= 15  # reads, writes, memory, schedules, breakers


@pytest.mark.parametrize(("method", "path"), api_requests())
async def test_every_api_route_wants_the_token(app: RunningApp, method: str, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_TOKEN}):
        refused = await app.client.request(method, path, headers=headers, content=b"{not json")
        assert refused.status_code == 401, (path, headers)
        assert refused.json() == UNAUTHORIZED
        assert refused.headers["www-authenticate"] == "Bearer"
    allowed = await app.client.request(
        method, path, headers={"Authorization": f"Bearer {API_TOKEN}"}, content=b"{}"
    )
    assert allowed.status_code != 401, path


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
async def test_health_readiness_and_metrics_are_open(app: RunningApp, path: str) -> None:
    assert (await app.client.get(path)).status_code in (200, 503)
