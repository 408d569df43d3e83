"""Bearer-token checks for the webhook and the API.

Every refusal is the same 401: a JSON error naming the problem and `WWW-Authenticate: Bearer`
(RFC 6750), so HTTP clients and proxies know which credentials are asked for.

The API's routes are declared with `api_route`, which puts `ApiTokenRequired` (Starlette's
per-route middleware) in front of the handler: the token is checked before anything else is
read (a wrong token learns nothing about the path or the body), and no handler checks it by
hand. The open endpoints (`/healthz`, `/readyz`, `/metrics`), Slack's (its own signature) and
the webhook (its own token) are plain `Route`s.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Collection
from typing import Any

from pydantic import SecretStr
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from firebreak.bot.errors import error_response

UNAUTHORIZED_DETAIL = "missing or wrong bearer token"


def bearer_ok(request: Request, token: SecretStr | None) -> bool:
    """True when no token is configured or the request carries exactly it."""
    if token is None:
        return True
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), token.get_secret_value().encode()
    )


def unauthorized() -> JSONResponse:
    response = error_response(401, "unauthorized", UNAUTHORIZED_DETAIL)
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


def refused(request: Request, token: SecretStr | None) -> JSONResponse | None:
    """The 401 to answer when the request lacks `token`, else None."""
    return None if bearer_ok(request, token) else unauthorized()


class ApiTokenRequired:
    """Per-route ASGI middleware: the request carries `$FIREBREAK_API_TOKEN` as its bearer
    token (when one is set), or it is answered the 401 and the handler never runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        if bearer_ok(request, request.app.state.runtime.secrets.api_token):
            await self.app(scope, receive, send)
        else:
            await unauthorized()(scope, receive, send)


def api_route(path: str, endpoint: Callable[..., Any], *, methods: Collection[str]) -> Route:
    """A route of the JSON API: behind the API token."""
    return Route(path, endpoint, methods=methods, middleware=[Middleware(ApiTokenRequired)])
