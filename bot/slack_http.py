"""`POST /slack/events`: Events API, slash commands and interactivity, handed to Bolt.

The route stays in the app whatever the mode; it answers 404 ``slack_disabled`` unless the
Slack component runs in HTTP mode and has put its handler on the runtime. Bolt verifies the
signature and timestamp (401 when wrong or older than 5 minutes).
"""

from __future__ import annotations

from slack_bolt.adapter.starlette.async_handler import to_async_bolt_request, to_starlette_response
from slack_bolt.async_app import AsyncApp
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from firebreak.bot.errors import PayloadTooLarge, error_response, read_body


async def slack_events(request: Request) -> Response:
    handler = getattr(request.app.state.runtime, "slack_handler", None)
    if handler is None:
        return JSONResponse(
            {"error": "slack_disabled", "detail": "Slack is not running in HTTP mode"},
            status_code=404,
        )
    return await handler(request)


class BoltHttpHandler:
    """Starlette request -> Bolt -> Starlette response, with the server's body size limit."""

    def __init__(self, app: AsyncApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, request: Request) -> Response:
        try:
            body = await read_body(request, self.max_body_bytes)
        except PayloadTooLarge as exc:
            return error_response(413, "payload_too_large", str(exc))
        except ClientDisconnect:
            return error_response(400, "client_disconnected", "the request body was not complete")
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return error_response(400, "invalid_body", "the body is not UTF-8")
        bolt_response = await self.app.async_dispatch(to_async_bolt_request(request, body))
        return to_starlette_response(bolt_response)
