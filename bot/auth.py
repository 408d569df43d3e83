"""Bearer-token checks for the webhook and the API.

Every refusal is the same 401: a JSON error naming the problem and `WWW-Authenticate: Bearer`
(RFC 6750), so HTTP clients and proxies know which credentials are asked for.
"""

from __future__ import annotations

import hmac

from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse

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
