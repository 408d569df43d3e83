"""Read-only JSON API over incidents, plus health, readiness, metrics and the circuit
breakers' operator controls. The API's routes are `bot.auth.api_route`s (`incident_routes`),
so the token is checked before these handlers run; health, readiness and metrics are open."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic_core import to_jsonable_python
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from firebreak.bot.auth import api_route
from firebreak.bot.errors import error_response
from firebreak.bot.slack_outbox import refresh_pending_gauge
from firebreak.store import incidents
from firebreak.store.counts import refresh_open_gauge
from firebreak.store.db import ping
from firebreak.store.health import describe
from firebreak.store.schemas import IncidentOut, IncidentStatus
from firebreak.tools.breaker import ACTIONS


def incident_routes() -> list[Route]:
    """The read API's routes and the breakers' controls (`firebreak/app.py` `routes()`)."""
    incident = "/api/v1/incidents/{incident_id}"
    return [
        api_route("/api/v1/incidents", list_incidents, methods=["GET"]),
        api_route(incident, get_incident, methods=["GET"]),
        api_route(f"{incident}/timeline", get_timeline, methods=["GET"]),
        api_route("/api/v1/breakers", list_breakers, methods=["GET"]),
        api_route("/api/v1/breakers/{name}/{action}", breaker_action, methods=["POST"]),
    ]


def path_incident_id(request: Request) -> int | None:
    """The `{incident_id}` of the path as a number, None when it cannot name an incident."""
    raw = request.path_params["incident_id"]
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


async def list_incidents(request: Request) -> JSONResponse:
    raw_status = request.query_params.get("status")
    status = None
    if raw_status is not None:
        try:
            status = IncidentStatus(raw_status)
        except ValueError:
            allowed = ", ".join(s.value for s in IncidentStatus)
            return error_response(400, "invalid_status", f"status must be one of {allowed}")
    async with request.app.state.runtime.engine.connect() as conn:
        found = await incidents.list_incidents(conn, status)
    scrub = request.app.state.runtime.redactor.redact_value
    return JSONResponse([incident.shown(scrub).model_dump(mode="json") for incident in found])


async def get_incident(request: Request) -> JSONResponse:
    return await _one_incident(request, incidents.get_incident)


async def get_timeline(request: Request) -> JSONResponse:
    return await _one_incident(request, incidents.timeline)


async def _one_incident(
    request: Request, fetch: Callable[[AsyncConnection, int], Awaitable[Any]]
) -> JSONResponse:
    """Something about the incident named in the path, or 404 when there is no such one."""
    incident_id = path_incident_id(request)
    found = None
    if incident_id is not None:
        async with request.app.state.runtime.engine.connect() as conn:
            found = await fetch(conn, incident_id)
    if found is None:
        return error_response(404, "not_found", f"no incident {request.path_params['incident_id']}")
    if isinstance(found, IncidentOut):  # label values as people may read them
        found = found.shown(request.app.state.runtime.redactor.redact_value)
    return JSONResponse(to_jsonable_python(found))


async def list_breakers(request: Request) -> JSONResponse:
    """`[{name, state, failures, calls, failure_rate, opened_at, ...}]`, one per dependency."""
    board = request.app.state.runtime.breakers
    statuses = board.statuses() if board is not None else []
    return JSONResponse([status.model_dump(mode="json") for status in statuses])


async def breaker_action(request: Request) -> JSONResponse:
    """`POST /api/v1/breakers/{name}/open|close|reset`: applied here, stored for every replica."""
    board = request.app.state.runtime.breakers
    name, action = request.path_params["name"], request.path_params["action"]
    if board is None or board.get(name) is None:
        return error_response(404, "not_found", f"no circuit breaker {name!r}")
    if action not in ACTIONS:
        return error_response(404, "not_found", f"no breaker action {action!r}: open, close, reset")
    try:
        status = await board.act(name, action, by="api")
    except Exception as exc:  # the store did not take it: nothing changed, here or elsewhere
        return error_response(503, "store_unavailable", f"not stored: {type(exc).__name__}")
    return JSONResponse(status.model_dump(mode="json"))


async def healthz(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


READY_PING_TIMEOUT_S = 2.0


async def readyz(request: Request) -> JSONResponse:
    runtime = request.app.state.runtime
    checks = {"store": await store_readiness(runtime.engine, runtime.writer.readiness)}
    checks.update(runtime.readiness())
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


async def store_readiness(engine: AsyncEngine, writes: Callable[[], str]) -> str:
    """ "ok" when the store answers a read in time and its writes are not failing; else the
    reason: reads can go on while writes fail (a full disk), so both are asked."""
    try:
        async with asyncio.timeout(READY_PING_TIMEOUT_S):
            await ping(engine)
    except Exception as exc:
        return f"unreachable: {describe(exc)}"
    return writes()


async def metrics(request: Request) -> Response:
    runtime = request.app.state.runtime
    await refresh_open_gauge(runtime.metrics.incidents_open, runtime.engine)
    await refresh_pending_gauge(runtime.metrics.slack_outbox_pending, runtime.engine)
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
