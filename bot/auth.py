"""Bearer-token checks for the webhook and the API."""

from __future__ import annotations

import hmac

from pydantic import SecretStr
from starlette.requests import Request


def bearer_ok(request: Request, token: SecretStr | None) -> bool:
    """True when no token is configured or the request carries exactly it."""
    if token is None:
        return True
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), token.get_secret_value().encode()
    )
