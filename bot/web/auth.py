"""Signed links and sessions for the incident pages.

A browser cannot send the API's bearer token, so the Slack card carries a link with a signed,
expiring token instead. Opening it trades the token for an HttpOnly session cookie and
redirects to the same page without the token, so the token does not linger in the address
bar, the history or a Referer.

Scope: a link and its session open ONE incident's page (the cookie is named and pathed after
the incident, and the scope is inside the signature). A leaked link exposes that incident and
nothing else. `incidents_link` mints a link for every page (the list), for places that speak
about many incidents at once.

Tokens are `scope.expires.signature`: HMAC-SHA256 (stdlib `hmac`; a dependency is not worth
twenty lines) over a purpose, the scope and the expiry in epoch seconds. The key is
`FIREBREAK_WEB_SECRET`, else one derived from `FIREBREAK_API_TOKEN` (never the token itself,
so a signature says nothing about it). Link and session tokens sign different purposes, so
one cannot stand in for the other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from urllib.parse import urlencode

from pydantic import AnyUrl, SecretStr
from starlette.requests import Request
from starlette.responses import Response

from firebreak.bot.auth import bearer_ok

ALL = "all"  # the scope of every page
LINK = "link"
SESSION = "session"
LINK_TTL = timedelta(days=7)  # a Slack card stays in the channel for days
SESSION_TTL = timedelta(hours=12)
TOKEN_PARAM = "token"
_DERIVE = b"firebreak web links v1"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""


class Secrets(Protocol):
    """The two secrets the pages use (`firebreak.config.Secrets` has them)."""

    @property
    def api_token(self) -> SecretStr | None: ...

    @property
    def web_secret(self) -> SecretStr | None: ...


def signing_key(secrets: Secrets) -> bytes | None:
    """The key for links and sessions; None when neither secret is set (pages are open)."""
    if secrets.web_secret is not None:
        return secrets.web_secret.get_secret_value().encode()
    if secrets.api_token is not None:
        token = secrets.api_token.get_secret_value().encode()
        return hmac.new(token, _DERIVE, hashlib.sha256).digest()
    return None


def sign(key: bytes, purpose: str, scope: str, expires: datetime) -> str:
    stamp = int(expires.timestamp())
    return f"{scope}.{stamp}.{_mac(key, purpose, scope, stamp)}"


def verify(key: bytes, purpose: str, token: str, scope: str, now: datetime) -> Verdict:
    """Whether `token` is ours, for `purpose`, unexpired at `now`, and covers `scope`."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[1].isdigit() or len(parts[1]) > 12:
        return Verdict(False, "malformed token")
    signed_scope, stamp, mac = parts
    if not hmac.compare_digest(mac.encode(), _mac(key, purpose, signed_scope, int(stamp)).encode()):
        return Verdict(False, "bad signature")
    if int(stamp) <= now.timestamp():
        return Verdict(False, "expired")
    if signed_scope not in (scope, ALL):
        return Verdict(False, "not valid for this page")
    return Verdict(True)


def incident_link(
    public_url: str | AnyUrl,
    incident_id: int,
    secrets: Secrets,
    now: datetime,
    *,
    ttl: timedelta = LINK_TTL,
) -> str:
    """The "Open in Firebreak" URL of one incident's page; signed when a key is configured."""
    page = f"{str(public_url).rstrip('/')}/incidents/{incident_id}"
    return _link(page, str(incident_id), secrets, now, ttl)


def incidents_link(
    public_url: str | AnyUrl, secrets: Secrets, now: datetime, *, ttl: timedelta = LINK_TTL
) -> str:
    """A URL of the incident list whose session opens every page."""
    return _link(f"{str(public_url).rstrip('/')}/incidents", ALL, secrets, now, ttl)


def _link(page: str, scope: str, secrets: Secrets, now: datetime, ttl: timedelta) -> str:
    key = signing_key(secrets)
    if key is None:
        return page
    return f"{page}?{urlencode({TOKEN_PARAM: sign(key, LINK, scope, now + ttl)})}"


def cookie_name(scope: str) -> str:
    return f"firebreak_session_{scope}"


def cookie_path(scope: str) -> str:
    return "/incidents" if scope == ALL else f"/incidents/{scope}"


def has_session(request: Request, secrets: Secrets, scope: str, now: datetime) -> bool:
    """True when the pages are open, the request carries the API token, or a session cookie
    (this incident's, or one for every page) verifies."""
    if secrets.api_token is None:
        return True
    if request.headers.get("authorization") and bearer_ok(request, secrets.api_token):
        return True
    key = signing_key(secrets)
    assert key is not None  # derived from the API token at least
    for cookie_scope in {scope, ALL}:
        value = request.cookies.get(cookie_name(cookie_scope))
        if value and verify(key, SESSION, value, scope, now).ok:
            return True
    return False


def start_session(response: Response, key: bytes, scope: str, now: datetime, secure: bool) -> None:
    """Set the session cookie a verified link earned."""
    response.set_cookie(
        cookie_name(scope),
        sign(key, SESSION, scope, now + SESSION_TTL),
        max_age=int(SESSION_TTL.total_seconds()),
        path=cookie_path(scope),
        secure=secure,
        httponly=True,
        samesite="lax",
    )


def _mac(key: bytes, purpose: str, scope: str, stamp: int) -> str:
    digest = hmac.new(key, f"{purpose}:{scope}:{stamp}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
