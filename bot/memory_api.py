"""The incident memory over HTTP:

    GET /api/v1/incidents/{id}/related      {"similar": [...], "concurrent": [...]}
    GET /api/v1/incidents/{id}/postmortem   the postmortem draft, text/markdown
    GET /api/v1/stats?since=RFC3339         {incidents, mtta_s, mttr_s, by_service}

Like the rest of the API they want `Authorization: Bearer $FIREBREAK_API_TOKEN` when that is
set (`bot.auth.api_route`). An unknown incident is 404; a `since` that is not an RFC 3339
date-time with an offset is 400 (a `+` offset that arrived as a space, from an unencoded query
string, is read as `+`).
The queries live in store/memory.py, the draft behind `runtime.postmortems`.
"""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import AwareDatetime, TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from firebreak.bot.api import path_incident_id
from firebreak.bot.auth import api_route
from firebreak.bot.errors import error_response
from firebreak.store import memory

__all__ = ["memory_routes"]

_SINCE = TypeAdapter(AwareDatetime)
_SPACED_OFFSET = re.compile(r" (\d{2}:?\d{2})$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")  # not a bare Unix time
MARKDOWN = "text/markdown; charset=utf-8"


def _not_found(request: Request) -> JSONResponse:
    return error_response(404, "not_found", f"no incident {request.path_params['incident_id']}")


async def related(request: Request) -> JSONResponse:
    incident_id = path_incident_id(request)
    found = None
    if incident_id is not None:
        async with request.app.state.runtime.engine.connect() as conn:
            found = await memory.related(conn, incident_id)
    if found is None:
        return _not_found(request)
    return JSONResponse(to_jsonable_python(found))


async def postmortem(request: Request) -> Response:
    incident_id = path_incident_id(request)
    draft = None
    if incident_id is not None:
        draft = await request.app.state.runtime.postmortems.draft(incident_id, actor="api")
    if draft is None:
        return _not_found(request)
    return Response(draft.markdown, media_type=MARKDOWN)


def parse_since(raw: str) -> datetime:
    """RFC 3339 with an offset; ValueError naming the problem otherwise."""
    if not _DATE_TIME.match(raw):
        raise ValueError("expected a date-time such as 2026-12-01T00:00:00Z")
    try:
        return _SINCE.validate_python(_SPACED_OFFSET.sub(r"+\1", raw))
    except ValidationError as exc:
        raise ValueError(exc.errors(include_url=False)[0]["msg"]) from None


async def stats(request: Request) -> JSONResponse:
    raw = request.query_params.get("since")
    since = None
    if raw is not None:
        try:
            since = parse_since(raw)
        except ValueError as exc:
            return error_response(
                400, "invalid_since", f"since must be RFC 3339 with an offset: {exc}"
            )
    async with request.app.state.runtime.engine.connect() as conn:
        return JSONResponse(await memory.stats(conn, since))


def memory_routes() -> list[Route]:
    """The routes to add to the app's (`firebreak/app.py` `routes()`)."""
    base = "/api/v1/incidents/{incident_id}"
    return [
        api_route(f"{base}/related", related, methods=["GET"]),
        api_route(f"{base}/postmortem", postmortem, methods=["GET"]),
        api_route("/api/v1/stats", stats, methods=["GET"]),
    ]
