"""The composition root: builds every component once and wires them together.

`Runtime` is the app object the brief allows as the only mutable global state; handlers reach
it through `request.app.state.runtime`. Components start in dependency order in the lifespan
and stop in reverse, so on SIGTERM in-flight webhook requests finish and their alerts are
committed before the store closes.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from firebreak.bot import api, slack_http, webhooks
from firebreak.config import Config, Secrets
from firebreak.events import Change, EventBus, IncidentEvent
from firebreak.metrics import Metrics
from firebreak.ports import Escalations, Investigations, Notifier, Remediations
from firebreak.store.db import create_engine, create_sync_engine
from firebreak.store.incidents import utcnow
from firebreak.store.ingest import IngestOutcome, ingest
from firebreak.store.migrate import upgrade
from firebreak.store.payloads import AlertmanagerPayload
from firebreak.store.writer import Writer
from firebreak.tools.breaker import BreakerBoard

log = structlog.get_logger(__name__)

Readiness = Callable[[], str]  # "ok" or the reason it is not ready


@dataclass
class Runtime:
    config: Config
    secrets: Secrets
    engine: AsyncEngine
    metrics: Metrics
    bus: EventBus
    writer: Writer  # group commit for hot writes (store/writer.py)
    readiness_checks: dict[str, Readiness] = field(default_factory=dict)
    # Set by the components as they start (see firebreak/components.py).
    notifier: Notifier | None = None
    investigations: Investigations | None = None
    escalations: Escalations | None = None
    remediations: Remediations | None = None
    breakers: BreakerBoard | None = None  # every dependency's circuit breaker (tools/breaker.py)
    # POST /slack/events is forwarded here while Slack runs in HTTP mode (bot/slack_app.py).
    slack_handler: Callable[[Request], Awaitable[Response]] | None = None

    def readiness(self) -> dict[str, str]:
        return {name: check() for name, check in self.readiness_checks.items()}

    async def ingest(self, payload: AlertmanagerPayload) -> IngestOutcome:
        """Store an Alertmanager notification (returns once committed), then announce what
        changed: the bus starts cards, investigations and ladders, never inside the request."""
        outcome = await self.writer.run(
            partial(
                ingest,
                payload=payload,
                now=utcnow(),
                reopen_window_s=self.config.ingest.reopen_window_s,
            )
        )
        if outcome.incident_id is not None:
            _announce(outcome, self.bus, self.metrics)
        return outcome


def build_runtime(config: Config, secrets: Secrets) -> Runtime:
    engine = create_engine(config.store.url)
    metrics = Metrics()
    bus = EventBus()
    writer = Writer(create_sync_engine(config.store.url))
    return Runtime(config, secrets, engine, metrics, bus, writer)


def _announce(outcome: IngestOutcome, bus: EventBus, metrics: Metrics) -> None:
    assert outcome.incident_id is not None
    if outcome.opened:
        metrics.incidents_opened.inc()
        bus.publish(IncidentEvent(outcome.incident_id, Change.OPENED, "alertmanager"))
    if outcome.resolved:
        metrics.incidents_resolved.inc()
        bus.publish(IncidentEvent(outcome.incident_id, Change.RESOLVED, "alertmanager"))
    elif not outcome.opened and outcome.alerts_written:
        bus.publish(IncidentEvent(outcome.incident_id, Change.ALERTS, "alertmanager"))


Component = Callable[[Runtime, AsyncExitStack], Awaitable[None]]


@asynccontextmanager
async def running(runtime: Runtime, components: list[Component]) -> AsyncIterator[Runtime]:
    """The store migrated, the writer and every component started; all stopped on exit in
    reverse order. Used by the ASGI lifespan, `firebreak investigate` and the demo."""
    await asyncio.to_thread(upgrade, runtime.config.store.url)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(runtime.engine.dispose)
        await runtime.writer.start()
        stack.push_async_callback(_logged_stop, "store writer", runtime.writer.stop)
        for component in components:
            async with AsyncExitStack() as own:  # each component's shutdown, timed as one
                await component(runtime, own)
                stack.push_async_callback(_logged_stop, _name(component), own.pop_all().aclose)
        yield runtime


async def _logged_stop(name: str, stop: Callable[[], Awaitable[object]]) -> None:
    began = time.perf_counter()
    await stop()
    log.info("stopped", component=name, seconds=round(time.perf_counter() - began, 3))


def _name(component: Component) -> str:
    return getattr(component, "__qualname__", repr(component)).split(".<locals>")[0]


def create_app(runtime: Runtime, components: list[Component] | None = None) -> Starlette:
    """The ASGI app. `components` start after the store and writer, each registering its own
    shutdown on the exit stack (Slack, investigations, scheduler)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with running(runtime, components or []):
            # What start-up built lives as long as the process: frozen, it leaves the full
            # collections, which an alert storm set off every 2 s at 190 ms each (measured),
            # stalling every request in flight.
            gc.freeze()
            log.info("firebreak started", store=runtime.engine.url.get_backend_name())
            yield
        log.info("firebreak stopped")

    app = Starlette(
        routes=routes(),
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},  # JSON, like every other error
    )
    app.state.runtime = runtime
    return app


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        {"error": error, "detail": f"{request.method} {request.url.path}: {exc.detail}"},
        status_code=exc.status_code,
        headers=exc.headers,
    )


def routes() -> list[Route]:
    return [
        Route("/webhooks/alertmanager", webhooks.alertmanager_webhook, methods=["POST"]),
        Route("/slack/events", slack_http.slack_events, methods=["POST"]),
        Route("/api/v1/incidents", api.list_incidents, methods=["GET"]),
        Route("/api/v1/incidents/{incident_id}", api.get_incident, methods=["GET"]),
        Route("/api/v1/incidents/{incident_id}/timeline", api.get_timeline, methods=["GET"]),
        Route("/api/v1/breakers", api.list_breakers, methods=["GET"]),
        Route("/api/v1/breakers/{name}/{action}", api.breaker_action, methods=["POST"]),
        Route("/healthz", api.healthz, methods=["GET"]),
        Route("/readyz", api.readyz, methods=["GET"]),
        Route("/metrics", api.metrics, methods=["GET"]),
    ]
