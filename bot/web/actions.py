"""The incident page's forms: Acknowledge, Resolve and Add note, as plain HTML forms.

    POST /incidents/{id}/acknowledge   csrf=…
    POST /incidents/{id}/resolve       csrf=…
    POST /incidents/{id}/notes         csrf=…&text=…

Each acts as the session's person (a link made for them: bot/web/auth.py) through the same
incident actions as Slack and the write API (`incidents.flows.IncidentOps`, `via="page"`, so
the incident's Slack thread hears it), then redirects back to the page (POST/redirect/GET: a
reload does not post again). Checks, in order: a malformed id or unknown action 404; no
session 401; a session that names nobody (the card's link, the bearer token) 403; a CSRF
token missing or not this session's 403; a person `access.responders` does not allow 403; an
unknown incident 404; a note without text, or with a NUL, 422. Each refusal is a page that
names the problem and changes nothing.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from urllib.parse import parse_qs

import structlog
from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from firebreak.bot.errors import PayloadTooLarge, read_body
from firebreak.bot.web import auth
from firebreak.bot.web.pages import NO_STORE, SECURITY_HEADERS, error_page, not_found, refused
from firebreak.bot.write_api import WHAT, responders_list
from firebreak.incidents.flows import IncidentOps, Outcome, Result
from firebreak.incidents.notices import Surface

log = structlog.get_logger(__name__)

PAGE: Surface = "page"  # the surface the Slack thread names (`ActedElsewhere`)
MAX_FORM_BYTES = 16 * 1024  # a note of 4000 characters, percent-encoded, fits
MAX_NOTE = 4000
ACTIONS = {"acknowledge": "acknowledge", "resolve": "resolve", "notes": "note"}
NO_PERSON = (
    "This session does not say who you are, so it can only read. To act, open the page from "
    "`/incident link {id}` in Slack or `firebreak open {id} --by YOU`."
)
BAD_CSRF = (
    "The form's CSRF token is {problem}: the form did not come from this session's page. "
    "Reload the page and submit it again."
)


def routes() -> list[BaseRoute]:
    return [Route("/incidents/{incident_id}/{action}", page_action, methods=["POST"])]


async def page_action(request: Request) -> Response:
    raw, action = request.path_params["incident_id"], request.path_params["action"]
    if not (raw.isdigit() and len(raw) < 19) or action not in ACTIONS:
        return not_found(request, raw)
    incident_id, now = int(raw), datetime.now(UTC)
    runtime = request.app.state.runtime
    if not auth.has_session(request, runtime.secrets, raw, now):
        return refused(request, "This page needs a session: open it from a Firebreak link.")
    session = auth.person_session(request, runtime.secrets, raw, now)
    if session is None:
        return error_page(request, "Who are you?", NO_PERSON.format(id=incident_id), 403)
    form = await _form(request)
    if isinstance(form, Response):
        return form
    if (problem := _csrf_problem(form.get("csrf"), session.csrf)) is not None:
        log.info("page form refused", incident_id=incident_id, problem=problem)
        return error_page(request, "Form refused", BAD_CSRF.format(problem=problem), 403)
    what = ACTIONS[action]
    if (found := await runtime.access.may_act(session.person, incident_id)) is not None:
        detail = f"Only responders of incident #{incident_id} may {WHAT[what]}: "
        return error_page(request, "Not a responder", detail + responders_list(found), 403)
    outcome = await _run(runtime.incidents, what, incident_id, session.person, form)
    if isinstance(outcome, str):
        return error_page(request, "Nothing noted", outcome, 422)
    if outcome.result is Result.MISSING:
        return not_found(request, raw)
    log.info(
        "incident action via the page",
        action=what,
        incident_id=incident_id,
        actor=session.person,
        result=outcome.result.value,
    )
    headers = {**SECURITY_HEADERS, **NO_STORE}
    return RedirectResponse(f"/incidents/{incident_id}", status_code=303, headers=headers)


async def _run(
    ops: IncidentOps, what: str, incident_id: int, person: str, form: dict[str, str]
) -> Outcome | str:
    """The action's outcome, or why a note cannot be taken."""
    if what == "acknowledge":
        return await ops.acknowledge(incident_id, person, via=PAGE)
    if what == "resolve":
        return await ops.resolve(incident_id, person)
    text = (form.get("text") or "").strip()
    if not text:
        return "A note needs some text."
    if "\x00" in text or len(text) > MAX_NOTE:
        return f"A note is at most {MAX_NOTE} characters, without NUL characters."
    return await ops.add_note(incident_id, person, text, via=PAGE)


async def _form(request: Request) -> dict[str, str] | Response:
    """The urlencoded form (each field's first value), or the page refusing it."""
    try:
        body = await read_body(request, MAX_FORM_BYTES)
    except PayloadTooLarge as exc:
        return error_page(request, "Form too large", str(exc), 413)
    except ClientDisconnect:
        return error_page(request, "Form incomplete", "The form was not received whole.", 400)
    try:
        fields = parse_qs(body.decode(), max_num_fields=10, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return error_page(request, "Bad form", "The form is not URL-encoded UTF-8.", 400)
    return {name: values[0] for name, values in fields.items() if values}


def _csrf_problem(given: str | None, expected: str) -> str | None:
    if not given:
        return "missing"
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return "wrong (it does not match this session)"
    return None
