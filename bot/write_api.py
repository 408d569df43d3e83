"""The write half of the JSON API: acknowledge, escalate, resolve and annotate incidents.

    POST /api/v1/incidents/{id}/acknowledge   {"by": "U0ALICE"}
    POST /api/v1/incidents/{id}/escalate      {"by": "alice"}
    POST /api/v1/incidents/{id}/resolve       {"by": "U0ALICE"}
    POST /api/v1/incidents/{id}/notes         {"by": "U0ALICE", "text": "rolled back v2.4.1"}
    POST /api/v1/incidents/{id}/feedback      {"by": "U0ALICE", "verdict": "wrong",
                                               "actual_cause": "the v2.4.1 deploy"}

Why through `incidents.flows.IncidentOps` and not the store: a button in Slack and a script
calling this API must do the same thing (stop the ladder, refresh the card, page the next
level, record the actor), so both call the one set of incident actions (`runtime.incidents`),
which also tells the incident's Slack thread who acknowledged, escalated or noted what here.
This module only checks the request and shapes the answer.

Answers: the incident JSON (as `GET /api/v1/incidents/{id}`), 200 also when nothing changed
(a repeated acknowledge or resolve is a no-op); 401 without the API token; 404 for an unknown
incident; 400 for a body that is not JSON, 422 for JSON of the wrong shape or text holding a
NUL character (both naming the problem); 413 over `server.max_body_bytes`; 403 (`forbidden`)
when `access` is configured and `by` is not one of the incident's responders (the API token
acts as `by`, and `by` may do what that person may do in Slack). Bad input never reaches the
domain. Feedback (`incidents.feedback.FeedbackOps`, the RCA reply's Correct / Wrong) answers
409 when there is no analysis to judge (`no_analysis`) or `run_id` names one a newer analysis
replaced (`superseded`); repeating the latest verdict changes nothing. Escalating an incident
no escalation policy matches answers 409 (`no_policy`) and changes nothing: a caller must not
believe someone was paged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import structlog
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import to_jsonable_python
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from firebreak.access.responders import Responders
from firebreak.bot.api import path_incident_id
from firebreak.bot.auth import api_route
from firebreak.bot.errors import PayloadTooLarge, error_response, read_body, validation_response
from firebreak.incidents.feedback import MAX_CAUSE, FeedbackResult
from firebreak.incidents.flows import IncidentOps, Outcome, Result
from firebreak.incidents.notices import Surface
from firebreak.store import incidents
from firebreak.store.payloads import no_nul
from firebreak.store.schemas import Verdict

__all__ = ["ActionBody", "FeedbackBody", "NoteBody", "write_routes"]

log = structlog.get_logger(__name__)

MAX_ACTOR = 64  # the store's actor columns
API: Surface = "api"  # the surface the thread names for these actions (`ActedElsewhere`)
MAX_NOTE = 4000


Actor = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=MAX_ACTOR, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]
# NUL is refused, not replaced: PostgreSQL cannot store it, and a person's words are not
# rewritten behind their back when a 422 naming the field tells them at once.
NoteText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NOTE),
    AfterValidator(no_nul),
]
CauseText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_CAUSE),
    AfterValidator(no_nul),
]
RunId = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(no_nul)]


class ActionBody(BaseModel):
    """`by`: who acts, a Slack user id (`U…`) or a name; the timeline records it."""

    model_config = ConfigDict(extra="forbid")

    by: Actor


class NoteBody(ActionBody):
    text: NoteText


class FeedbackBody(ActionBody):
    """`actual_cause` is required with `wrong` (what it really was), optional with `correct`.
    `run_id`, when given, is the analysis judged (`analysis.run_id`): a newer one is not."""

    verdict: Verdict
    actual_cause: CauseText | None = Field(default=None, validate_default=True)
    run_id: RunId | None = None

    @field_validator("actual_cause")
    @classmethod
    def _cause_when_wrong(cls, cause: str | None, info: ValidationInfo) -> str | None:
        if cause is None and info.data.get("verdict") is Verdict.WRONG:
            raise ValueError("required when the verdict is wrong")
        return cause


Operation = Callable[[IncidentOps, int, Any], Awaitable[Outcome]]
B = TypeVar("B", bound=ActionBody)


async def acknowledge(request: Request) -> JSONResponse:
    return await _act(
        request, "acknowledge", ActionBody, lambda ops, i, b: ops.acknowledge(i, b.by, via=API)
    )


async def escalate(request: Request) -> JSONResponse:
    return await _act(
        request, "escalate", ActionBody, lambda ops, i, b: ops.escalate(i, b.by, via=API)
    )


async def resolve(request: Request) -> JSONResponse:
    return await _act(request, "resolve", ActionBody, lambda ops, i, b: ops.resolve(i, b.by))


async def add_note(request: Request) -> JSONResponse:
    return await _act(
        request, "note", NoteBody, lambda ops, i, b: ops.add_note(i, b.by, b.text, via=API)
    )


async def feedback(request: Request) -> JSONResponse:
    """A verdict on the incident's latest analysis; 409 when there is none to judge."""
    parsed = await _parsed(request, FeedbackBody)
    if isinstance(parsed, JSONResponse):
        return parsed
    runtime, incident_id, body = parsed
    if (refused := await _not_a_responder(runtime, incident_id, body.by, JUDGE)) is not None:
        return refused
    done = await runtime.feedback.give(
        incident_id, body.verdict, body.by, body.actual_cause, run_id=body.run_id
    )
    if done.result is FeedbackResult.MISSING:
        return _not_found(request)
    if done.result in CONFLICTS:
        return error_response(409, done.result.value, CONFLICTS[done.result].format(incident_id))
    return await _incident_answer(request, runtime, incident_id)


CONFLICTS = {
    FeedbackResult.NO_ANALYSIS: "incident {} has no analysis to judge yet",
    FeedbackResult.SUPERSEDED: "run_id is not incident {}'s latest analysis any more",
}


def write_routes() -> list[Route]:
    """The routes to add to the app's (`firebreak/app.py` `routes()`)."""
    base = "/api/v1/incidents/{incident_id}"
    return [
        api_route(f"{base}/acknowledge", acknowledge, methods=["POST"]),
        api_route(f"{base}/escalate", escalate, methods=["POST"]),
        api_route(f"{base}/resolve", resolve, methods=["POST"]),
        api_route(f"{base}/notes", add_note, methods=["POST"]),
        api_route(f"{base}/feedback", feedback, methods=["POST"]),
    ]


async def _act(
    request: Request,
    action: str,
    model: type[ActionBody],
    operation: Operation,
) -> JSONResponse:
    parsed = await _parsed(request, model)
    if isinstance(parsed, JSONResponse):
        return parsed
    runtime, incident_id, body = parsed
    if (refused := await _not_a_responder(runtime, incident_id, body.by, WHAT[action])) is not None:
        return refused
    outcome = await operation(runtime.incidents, incident_id, body)
    if outcome.result is Result.MISSING:
        return _not_found(request)
    log.info(
        "incident action via the API",
        action=action,
        incident_id=incident_id,
        actor=body.by,
        result=outcome.result.value,
        escalation=outcome.escalation.result if outcome.escalation else None,
    )
    if outcome.escalation is not None and outcome.escalation.result == "no_policy":
        return error_response(409, "no_policy", NO_POLICY.format(incident_id))
    return await _incident_answer(request, runtime, incident_id)


NO_POLICY = (
    "no escalation policy matches incident {}, so there is nobody to page; nothing was "
    "changed (add one under escalation.policies)"
)


JUDGE = "judge its analysis"
WHAT = {
    "acknowledge": "acknowledge it",
    "escalate": "escalate it",
    "resolve": "resolve it",
    "note": "add notes to it",
}


async def _not_a_responder(
    runtime: Any, incident_id: int, by: str, what: str
) -> JSONResponse | None:
    """403 when `access` is configured and `by` is not one of the incident's responders: the
    API token acts as `by`, and `by` may do what it may do in Slack. None: go ahead (an
    unknown incident is answered 404 by the action itself)."""
    found = await runtime.access.may_act(by, incident_id)
    if found is None:
        return None
    log.info("incident action refused via the API", incident_id=incident_id, actor=by, what=what)
    detail = f"only responders of incident #{incident_id} may {what}: {responders_list(found)}"
    return error_response(403, "forbidden", detail)


async def _parsed(request: Request, model: type[B]) -> tuple[Any, int, B] | JSONResponse:
    """(runtime, incident id, body) of a write request, or the answer refusing it: 404 for a
    path naming no incident, then 413, 400 or 422 for the body. The token was checked before
    (`api_route`): a wrong one learns nothing about the id or the body."""
    runtime = request.app.state.runtime
    incident_id = path_incident_id(request)
    if incident_id is None:
        return _not_found(request)
    try:
        body = model.model_validate_json(
            await read_body(request, runtime.config.server.max_body_bytes)
        )
    except PayloadTooLarge as exc:
        return error_response(413, "payload_too_large", str(exc))
    except ClientDisconnect:
        return error_response(400, "client_disconnected", "the request body was not complete")
    except ValidationError as exc:
        return validation_response(exc)
    return runtime, incident_id, body


async def _incident_answer(request: Request, runtime: Any, incident_id: int) -> JSONResponse:
    """The incident JSON, as `GET /api/v1/incidents/{id}` answers it."""
    async with runtime.engine.connect() as conn:
        incident = await incidents.get_incident(conn, incident_id)
    if incident is None:  # deleted meanwhile (retention)
        return _not_found(request)
    return JSONResponse(to_jsonable_python(incident))


def _not_found(request: Request) -> JSONResponse:
    return error_response(404, "not_found", f"no incident {request.path_params['incident_id']}")


def responders_list(found: Responders) -> str:
    """The responders as plain ids: `U0ALICE, S0SRE, on call or paged: U0BOB`."""
    parts = list(found.named)
    if found.on_call:
        parts.append("on call or paged: " + ", ".join(found.on_call))
    return ", ".join(parts) or "nobody yet"
