"""The ASGI app: routes, JSON errors, and a lifespan that assembles the runtime.

The lifespan assembles every component in dependency order (firebreak/components.py) and takes
them apart in reverse, so on SIGTERM in-flight webhook requests finish and their alerts are
committed before the store closes. Handlers reach the runtime as `request.app.state.runtime`.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from firebreak.bot import api, memory_api, schedules_api, slack_http, webhooks, write_api
from firebreak.bot.web import actions, pages
from firebreak.components import Parts, assembled
from firebreak.config import Config, Secrets

log = structlog.get_logger(__name__)


def create_app(config: Config, secrets: Secrets, parts: Parts | None = None) -> Starlette:
    """The ASGI app; `parts` replaces some components (tests, the demo's console)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with assembled(config, secrets, parts or Parts()) as runtime:
            app.state.runtime = runtime
            # What start-up built lives as long as the process: frozen, it leaves the full
            # collections, which an alert storm set off every 2 s at 190 ms each (measured),
            # stalling every request in flight.
            gc.freeze()
            log.info("firebreak started", store=runtime.engine.url.get_backend_name())
            yield
        log.info("firebreak stopped")

    return Starlette(
        routes=routes(),
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},  # JSON, like every other error
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        {"error": error, "detail": f"{request.method} {request.url.path}: {exc.detail}"},
        status_code=exc.status_code,
        headers=exc.headers,
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/webhooks/alertmanager", webhooks.alertmanager_webhook, methods=["POST"]),
        Route("/slack/events", slack_http.slack_events, methods=["POST"]),
        # The JSON API, behind the API token (`bot.auth.api_route`). The rest checks its own
        # credentials (Slack's signature, the webhook's token, the pages' sessions) or is open.
        *api.incident_routes(),  # incidents, their timelines, the circuit breakers
        *schedules_api.schedule_routes(),
        *write_api.write_routes(),
        *memory_api.memory_routes(),  # related incidents, postmortem drafts, stats
        Route("/healthz", api.healthz, methods=["GET"]),
        Route("/readyz", api.readyz, methods=["GET"]),
        Route("/metrics", api.metrics, methods=["GET"]),
        *pages.routes(),  # /incidents, /incidents/{id}, /static/style.css
        *actions.routes(),  # the page's forms: POST /incidents/{id}/acknowledge|resolve|notes
    ]
