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

A link made for one person (`/incident link ID` in Slack, `firebreak open ID`) also signs who
they are: `scope.expires.person.signature`, the person base64url-encoded. Its session acts as
that person in the page's forms; the card's link is the channel's, names nobody, and its
session only reads. The forms carry a CSRF token derived from the session cookie
(`Session.csrf`): another site can make a browser send the cookie, never read it, so it cannot
forge the token.
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
CSRF = "csrf"
LINK_TTL = timedelta(days=7)  # a Slack card stays in the channel for days
SESSION_TTL = timedelta(hours=12)
TOKEN_PARAM = "token"
_DERIVE = b"firebreak web links v1"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""
    person: str = ""  # whom the token was made for; empty: nobody in particular


@dataclass(frozen=True)
class Session:
    """A session that names its person: who the page's forms act as, and their CSRF token."""

    person: str
    csrf: str


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


def sign(key: bytes, purpose: str, scope: str, expires: datetime, person: str = "") -> str:
    stamp = int(expires.timestamp())
    mac = _mac(key, purpose, scope, stamp, person)
    return f"{scope}.{stamp}.{_encode(person)}.{mac}" if person else f"{scope}.{stamp}.{mac}"


def verify(key: bytes, purpose: str, token: str, scope: str, now: datetime) -> Verdict:
    """Whether `token` is ours, for `purpose`, unexpired at `now`, and covers `scope`; and
    whom it was made for."""
    parts = token.split(".")
    if len(parts) not in (3, 4) or not parts[1].isdigit() or len(parts[1]) > 12:
        return Verdict(False, "malformed token")
    signed_scope, stamp, mac = parts[0], parts[1], parts[-1]
    person = _decode(parts[2]) if len(parts) == 4 else ""
    if person is None:
        return Verdict(False, "malformed token")
    expected = _mac(key, purpose, signed_scope, int(stamp), person)
    if not hmac.compare_digest(mac.encode(), expected.encode()):
        return Verdict(False, "bad signature")
    if int(stamp) <= now.timestamp():
        return Verdict(False, "expired")
    if signed_scope not in (scope, ALL):
        return Verdict(False, "not valid for this page")
    return Verdict(True, person=person)


def incident_link(
    public_url: str | AnyUrl,
    incident_id: int,
    secrets: Secrets,
    now: datetime,
    *,
    ttl: timedelta = LINK_TTL,
    person: str = "",
) -> str:
    """The "Open in Firebreak" URL of one incident's page; signed when a key is configured.
    `person`: whom it is for (its session may act as them in the page's forms)."""
    page = f"{str(public_url).rstrip('/')}/incidents/{incident_id}"
    return _link(page, str(incident_id), secrets, now, ttl, person)


def incidents_link(
    public_url: str | AnyUrl, secrets: Secrets, now: datetime, *, ttl: timedelta = LINK_TTL
) -> str:
    """A URL of the incident list whose session opens every page."""
    return _link(f"{str(public_url).rstrip('/')}/incidents", ALL, secrets, now, ttl)


def _link(
    page: str, scope: str, secrets: Secrets, now: datetime, ttl: timedelta, person: str = ""
) -> str:
    key = signing_key(secrets)
    if key is None:
        return page
    return f"{page}?{urlencode({TOKEN_PARAM: sign(key, LINK, scope, now + ttl, person)})}"


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


def person_session(request: Request, secrets: Secrets, scope: str, now: datetime) -> Session | None:
    """The session of this page that names a person (this incident's cookie first, then one
    for every page); None when there is none (no key, a channel's link, the bearer token)."""
    key = signing_key(secrets)
    if key is None:
        return None
    for cookie_scope in (scope, ALL):
        value = request.cookies.get(cookie_name(cookie_scope))
        if not value:
            continue
        verdict = verify(key, SESSION, value, scope, now)
        if verdict.ok and verdict.person:
            return Session(verdict.person, _digest(key, f"{CSRF}:{value}"))
    return None


def start_session(
    response: Response, key: bytes, scope: str, now: datetime, secure: bool, person: str = ""
) -> None:
    """Set the session cookie a verified link earned (naming the link's person, if any)."""
    response.set_cookie(
        cookie_name(scope),
        sign(key, SESSION, scope, now + SESSION_TTL, person),
        max_age=int(SESSION_TTL.total_seconds()),
        path=cookie_path(scope),
        secure=secure,
        httponly=True,
        samesite="lax",
    )


def _mac(key: bytes, purpose: str, scope: str, stamp: int, person: str = "") -> str:
    signed = f"{purpose}:{scope}:{stamp}" + (f":{_encode(person)}" if person else "")
    return _digest(key, signed)


def _digest(key: bytes, message: str) -> str:
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _encode(person: str) -> str:
    return base64.urlsafe_b64encode(person.encode()).rstrip(b"=").decode()


def _decode(raw: str) -> str | None:
    """A person as `_encode` wrote it; None for anything else."""
    if not raw or len(raw) > 400:
        return None
    try:
        person = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return person if person and person.isprintable() else None
