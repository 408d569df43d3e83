"""The incident pages: `/incidents` (the list) and `/incidents/{id}` (one incident).

Server-rendered HTML from Jinja2 templates and one stylesheet; no JavaScript at all, so the
page works in any browser a responder has at hand, and the CSP can forbid scripts and inline
styles outright. The data comes through the store's own query functions, the same the JSON
API reads, so the page and the API cannot disagree.

Access follows the API: open when `FIREBREAK_API_TOKEN` is unset, else a session from a
signed link (bot/web/auth.py) or the API's bearer token. A session that names its person
also gets the page's forms (bot/web/actions.py). Order of checks: a malformed id is a
404 (it names nothing), then the session (401, before anything about the incident is looked
up, so a stranger cannot probe which ids exist), then the lookup (404).
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.resources import files
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.templating import Jinja2Templates

from firebreak.bot.web import auth
from firebreak.bot.web.views import build_view
from firebreak.store import incidents, memory, remediations
from firebreak.store.schemas import IncidentStatus
from firebreak.tools.text import duration

PAGE_SIZE = 25
MAX_PAGE = 10_000
MAX_FILTER_CHARS = 200
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
NO_STORE = {"Cache-Control": "no-store"}  # incident data stays out of shared caches


def routes() -> list[BaseRoute]:
    return [
        Route("/incidents", incident_list, methods=["GET"]),
        Route("/incidents/{incident_id}", incident_page, methods=["GET"]),
        Route("/static/style.css", stylesheet, methods=["GET"]),
    ]


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(value: datetime | None, now: datetime) -> str:
    return "—" if value is None else f"{duration(now - value)} ago"


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("firebreak.bot.web", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["ago"] = _ago
    env.filters["took"] = duration
    return env


TEMPLATES = Jinja2Templates(env=_environment())


async def incident_list(request: Request) -> Response:
    now = datetime.now(UTC)
    if (answer := _redeem_link(request, auth.ALL, now)) is not None:
        return answer
    if not auth.has_session(request, request.app.state.runtime.secrets, auth.ALL, now):
        return refused(request, "This page needs a session: open it from a Firebreak link.")
    filters, problem = _filters(request)
    if problem:
        return _page(request, "error.html.j2", {"title": "Bad filter", "message": problem}, 400)
    page = filters.pop("page")
    async with request.app.state.runtime.engine.connect() as conn:
        found = await incidents.list_incidents(
            conn, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE, **filters
        )
    shown = {k: v.value if isinstance(v, IncidentStatus) else v for k, v in filters.items() if v}
    scrub = request.app.state.runtime.redactor.redact_value
    context = {
        "incidents": [incident.shown(scrub) for incident in found[:PAGE_SIZE]],
        "filters": shown,
        "statuses": [s.value for s in IncidentStatus],
        "page": page,
        "newer": _query(shown, page - 1) if page > 1 else None,
        "older": _query(shown, page + 1) if len(found) > PAGE_SIZE else None,
        "now": now,
    }
    return _page(request, "list.html.j2", context)


async def incident_page(request: Request) -> Response:
    raw = request.path_params["incident_id"]
    if not (raw.isdigit() and len(raw) < 19):
        return not_found(request, raw)
    now = datetime.now(UTC)
    incident_id = int(raw)
    if (answer := _redeem_link(request, str(incident_id), now)) is not None:
        return answer
    if not auth.has_session(request, request.app.state.runtime.secrets, str(incident_id), now):
        return refused(request, "This page needs a session: open it from the incident's card.")
    async with request.app.state.runtime.engine.connect() as conn:
        incident = await incidents.get_incident(conn, incident_id)
        if incident is None:
            return not_found(request, raw)
        events = await incidents.timeline(conn, incident_id) or []
        gathered = await incidents.latest_evidence(conn, incident_id)
        runs = await conn.run_sync(remediations.runs_of, incident_id)
        related = await memory.related(conn, incident_id)
    scrub = request.app.state.runtime.redactor.redact_value
    view = build_view(incident.shown(scrub), events, gathered, runs, related)
    session = auth.person_session(request, request.app.state.runtime.secrets, raw, now)
    return _page(request, "incident.html.j2", {"view": view, "now": now, "session": session})


async def stylesheet(_: Request) -> Response:
    css = files("firebreak.bot.web").joinpath("static/style.css").read_bytes()
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=300"}
    return Response(css, media_type="text/css", headers=headers)


def _redeem_link(request: Request, scope: str, now: datetime) -> Response | None:
    """A `?token=` link: verified, traded for a session cookie, and redirected to the page
    without it. None when the request carries no token."""
    token = request.query_params.get(auth.TOKEN_PARAM)
    if token is None:
        return None
    key = auth.signing_key(request.app.state.runtime.secrets)
    verdict = auth.Verdict(True)
    if key is not None:
        verdict = auth.verify(key, auth.LINK, token, scope, now)
        if not verdict.ok:
            reason = "has expired" if verdict.reason == "expired" else "is not valid"
            return refused(request, f"This link {reason}. Open the incident again from Slack.")
    rest = [(k, v) for k, v in request.query_params.multi_items() if k != auth.TOKEN_PARAM]
    target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
    response = RedirectResponse(target, status_code=303, headers={**SECURITY_HEADERS, **NO_STORE})
    if key is not None:
        secure = request.url.scheme == "https"
        auth.start_session(response, key, scope, now, secure=secure, person=verdict.person)
    return response


def _filters(request: Request) -> tuple[dict[str, Any], str | None]:
    params = request.query_params
    filters: dict[str, Any] = {"status": None, "service": None, "severity": None, "page": 1}
    raw_status = params.get("status") or None
    if raw_status is not None:
        try:
            filters["status"] = IncidentStatus(raw_status)
        except ValueError:
            allowed = ", ".join(s.value for s in IncidentStatus)
            return filters, f"status must be one of {allowed} (got {raw_status[:40]!r})"
    for name in ("service", "severity"):
        value = (params.get(name) or "").strip()
        if len(value) > MAX_FILTER_CHARS:
            return filters, f"{name} must be at most {MAX_FILTER_CHARS} characters"
        filters[name] = value or None
    raw_page = params.get("page") or "1"
    if not (raw_page.isdigit() and 1 <= int(raw_page) <= MAX_PAGE):
        return filters, f"page must be a whole number from 1 to {MAX_PAGE} (got {raw_page[:20]!r})"
    filters["page"] = int(raw_page)
    return filters, None


def _query(filters: dict[str, str], page: int) -> str:
    return "?" + urlencode({**filters, **({"page": page} if page > 1 else {})})


def _page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    return TEMPLATES.TemplateResponse(
        request, name, context, status_code=status, headers={**SECURITY_HEADERS, **NO_STORE}
    )


def error_page(request: Request, title: str, message: str, status: int) -> Response:
    """A refusal as a page that names the problem."""
    return _page(request, "error.html.j2", {"title": title, "message": message}, status)


def refused(request: Request, message: str) -> Response:
    response = error_page(request, "Session needed", message, 401)
    response.headers["WWW-Authenticate"] = 'Bearer realm="firebreak"'
    return response


def not_found(request: Request, raw: str) -> Response:
    return error_page(request, "No such incident", f"There is no incident {raw[:40]!r}.", 404)
