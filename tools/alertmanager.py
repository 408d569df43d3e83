"""Alertmanager silences over its v2 API: create one for an incident's group, expire it, read it.

The silence matches the incident's group labels exactly (`isEqual`, no regex), so it mutes
that group and nothing wider. `Authorization: Bearer` is sent when a token is given (usually
`$FIREBREAK_ALERTMANAGER_TOKEN`, for an Alertmanager behind an authenticating proxy); the
token lives only in the client's headers and never in a message or a log line. Every failure
is an `AlertmanagerError` whose message says what happened for the person who clicked
(Alertmanager down, or what it answered when it refused) and whose `reason` is a stable code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote

import httpx
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

__all__ = [
    "AlertmanagerClient",
    "AlertmanagerConfig",
    "AlertmanagerError",
    "Silence",
    "SilenceMatcher",
    "parse_duration",
]

MAX_SILENCE = timedelta(days=366)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(?:\d+[smhdw])+")
_PART = re.compile(r"(\d+)([smhdw])")
ErrorReason = Literal["unreachable", "timeout", "refused", "not_found", "failed", "bad_answer"]


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `4h`, `1d`, `1w`, `1h30m` -> timedelta; ValueError naming the problem."""
    compact = text.strip().lower()
    if not _DURATION.fullmatch(compact):
        raise ValueError(f"{text!r} is not a duration like 30m, 4h or 1d")
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(compact))
    duration = timedelta(seconds=seconds)
    if not timedelta(0) < duration <= MAX_SILENCE:
        raise ValueError(f"{text!r} must be longer than 0 and at most 366d")
    return duration


def _duration_text(text: str) -> str:
    parse_duration(text)
    return text.strip().lower()


SilenceDuration = Annotated[str, AfterValidator(_duration_text)]


class AlertmanagerConfig(BaseModel):
    """`alertmanager:` in config.yaml. Durations keep their text: it is the buttons' label."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    silence_durations: list[SilenceDuration] = Field(
        default_factory=lambda: ["1h", "4h", "24h"], min_length=1, max_length=5
    )
    timeout_s: float = Field(10, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL like http://alertmanager:9093")
        return url.rstrip("/")

    def durations(self) -> list[tuple[str, timedelta]]:
        """(label, length) of each silence the card offers."""
        return [(text, parse_duration(text)) for text in self.silence_durations]


class AlertmanagerError(Exception):
    """A silence call failed; str() is one line for people, `reason` a code for programs."""

    def __init__(self, message: str, *, reason: ErrorReason, status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


class SilenceMatcher(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    name: str
    value: str
    is_regex: bool = Field(False, alias="isRegex")
    is_equal: bool = Field(True, alias="isEqual")


class Silence(BaseModel):
    """A silence as Alertmanager holds it; `state` is `active`, `pending` or `expired`."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    state: str
    matchers: list[SilenceMatcher]
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime = Field(alias="endsAt")
    created_by: str = Field(alias="createdBy")
    comment: str = ""


class AlertmanagerClient:
    """One Alertmanager. Use as `async with AlertmanagerClient(url, token=...) as am:`."""

    def __init__(
        self,
        url: str,
        *,
        token: str | SecretStr | None = None,
        timeout_s: float = 10,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        secret = token.get_secret_value() if isinstance(token, SecretStr) else token
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        self.url = url.rstrip("/")
        self._timeout_s = timeout_s
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=timeout_s, transport=transport
        )

    @classmethod
    def from_config(
        cls, config: AlertmanagerConfig, token: str | SecretStr | None
    ) -> AlertmanagerClient:
        return cls(config.url, token=token, timeout_s=config.timeout_s)

    async def create_silence(
        self,
        matchers: Mapping[str, str],
        starts_at: datetime,
        ends_at: datetime,
        created_by: str,
        comment: str,
    ) -> str:
        """Silence alerts whose labels equal every `matchers` entry (the incident's group
        labels) from `starts_at` to `ends_at`; returns the silence id."""
        if not matchers:
            raise AlertmanagerError("nothing to match: the group has no labels", reason="refused")
        if starts_at.tzinfo is None or ends_at.tzinfo is None:
            raise ValueError("starts_at and ends_at must carry a timezone")
        body = {
            "matchers": [
                SilenceMatcher(name=name, value=value).model_dump(by_alias=True)
                for name, value in sorted(matchers.items())
            ],
            "startsAt": starts_at.isoformat(),
            "endsAt": ends_at.isoformat(),
            "createdBy": created_by,
            "comment": comment,
        }
        answer = await self._call("POST", "/api/v2/silences", "create the silence", json=body)
        silence_id = answer.get("silenceID") if isinstance(answer, dict) else None
        if not isinstance(silence_id, str) or not silence_id:
            raise AlertmanagerError(
                "Alertmanager answered without a silence id", reason="bad_answer"
            )
        return silence_id

    async def expire_silence(self, silence_id: str) -> None:
        """End the silence now (expiring an expired one again is fine)."""
        path = f"/api/v2/silence/{quote(silence_id, safe='')}"
        await self._call("DELETE", path, f"expire silence {silence_id}")

    async def get_silence(self, silence_id: str) -> Silence:
        path = f"/api/v2/silence/{quote(silence_id, safe='')}"
        answer = await self._call("GET", path, f"read silence {silence_id}")
        try:
            state = answer.get("status", {}).get("state", "") if isinstance(answer, dict) else ""
            return Silence.model_validate({**answer, "state": state})
        except (ValidationError, TypeError) as exc:
            raise AlertmanagerError(
                f"Alertmanager answered an unexpected silence ({exc.__class__.__name__})",
                reason="bad_answer",
            ) from None

    async def describe(self) -> str:
        """`GET /api/v2/status` as one line (version, cluster state), through the same
        headers and errors as the silence calls: what `firebreak check` shows."""
        answer = await self._call("GET", "/api/v2/status", "report its status")
        if not isinstance(answer, dict) or "versionInfo" not in answer:
            raise AlertmanagerError(
                f"{self.url} answered, but not as Alertmanager's v2 API", reason="bad_answer"
            )
        version = (answer.get("versionInfo") or {}).get("version") or "?"
        cluster = (answer.get("cluster") or {}).get("status") or "?"
        return f"alertmanager {version} at {self.url}, cluster {cluster}"

    async def _call(self, method: str, path: str, doing: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise AlertmanagerError(
                f"Alertmanager at {self.url} did not answer within {self._timeout_s:g} s",
                reason="timeout",
            ) from None
        except httpx.HTTPError as exc:
            raise AlertmanagerError(
                f"Alertmanager at {self.url} is down or unreachable ({type(exc).__name__})",
                reason="unreachable",
            ) from None
        if response.is_success:
            return response.json() if response.content else None
        raise _refusal(response, doing)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AlertmanagerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _refusal(response: httpx.Response, doing: str) -> AlertmanagerError:
    status, message = response.status_code, _message(response)
    said = f": {message}" if message else ""
    if status == 404 or (status >= 500 and "not found" in message.lower()):  # 0.25: 500
        return AlertmanagerError(
            f"Alertmanager could not {doing}: no such silence", reason="not_found", status=status
        )
    if status in (401, 403):
        return AlertmanagerError(
            f"Alertmanager refused to {doing} (HTTP {status}){said}; "
            "check $FIREBREAK_ALERTMANAGER_TOKEN",
            reason="refused",
            status=status,
        )
    if status >= 500:
        return AlertmanagerError(
            f"Alertmanager failed to {doing} (HTTP {status}){said}", reason="failed", status=status
        )
    return AlertmanagerError(
        f"Alertmanager refused to {doing} (HTTP {status}){said}", reason="refused", status=status
    )


def _message(response: httpx.Response) -> str:
    """What Alertmanager said: a JSON string, a JSON object's `message`, or the text."""
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if isinstance(body, dict):
        body = body.get("message") or body.get("error") or ""
    return " ".join(str(body).split())[:300]
