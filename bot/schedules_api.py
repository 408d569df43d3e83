"""`GET /api/v1/schedules` and `GET /api/v1/schedules/{name}/oncall?at=RFC3339`.

They read `request.app.state.runtime.oncall` (an `OnCall`) and, like the incident API, want
`Authorization: Bearer $FIREBREAK_API_TOKEN` when that is set (their routes are
`bot.auth.api_route`s: `schedule_routes`). `at` must be RFC 3339 with an offset; a `+`
offset that arrived as a space (an unencoded query string) is read as `+`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pydantic import AwareDatetime, BaseModel, TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from firebreak.bot.auth import api_route
from firebreak.bot.errors import error_response
from firebreak.oncall.schedules import NextShift, OnCall, Shift, UnknownSchedule

__all__ = ["list_schedules", "schedule_oncall", "schedule_routes"]

_AT = TypeAdapter(AwareDatetime)
_SPACED_OFFSET = re.compile(r" (\d{2}:?\d{2})$")


class ShiftOut(BaseModel):
    user: str | None
    since: datetime | None
    until: datetime | None

    @classmethod
    def of(cls, shift: Shift) -> ShiftOut:
        return cls(user=shift.user, since=shift.since, until=shift.until)


class NextOut(BaseModel):
    user: str
    at: datetime

    @classmethod
    def of(cls, upcoming: NextShift | None) -> NextOut | None:
        return None if upcoming is None else cls(user=upcoming.user, at=upcoming.at)


class ScheduleOut(BaseModel):
    name: str
    on_call: ShiftOut
    next: NextOut | None


def _oncall(request: Request) -> OnCall:
    return request.app.state.runtime.oncall


async def list_schedules(request: Request) -> JSONResponse:
    oncall, now = _oncall(request), datetime.now(UTC)
    found = [
        ScheduleOut(
            name=name,
            on_call=ShiftOut.of(oncall.who(name, now)),
            next=NextOut.of(oncall.next(name, now)),
        )
        for name in oncall.names()
    ]
    return JSONResponse([schedule.model_dump(mode="json") for schedule in found])


async def schedule_oncall(request: Request) -> JSONResponse:
    raw = request.query_params.get("at")
    at = datetime.now(UTC)
    if raw is not None:
        try:
            at = _AT.validate_python(_SPACED_OFFSET.sub(r"+\1", raw))
        except ValidationError as exc:
            problem = exc.errors(include_url=False)[0]["msg"]
            return error_response(
                400, "invalid_at", f"at must be RFC 3339 with an offset: {problem}"
            )
    try:
        shift = _oncall(request).who(request.path_params["name"], at)
    except UnknownSchedule as exc:
        return error_response(404, "not_found", str(exc))
    except ValueError as exc:  # a valid date-time too far away
        return error_response(400, "invalid_at", str(exc))
    return JSONResponse(ShiftOut.of(shift).model_dump(mode="json"))


def schedule_routes() -> list[Route]:
    """The routes to add to the app's (`firebreak/app.py` `routes()`)."""
    return [
        api_route("/api/v1/schedules", list_schedules, methods=["GET"]),
        api_route("/api/v1/schedules/{name}/oncall", schedule_oncall, methods=["GET"]),
    ]
