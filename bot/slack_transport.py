"""How outbox messages leave the process: the Slack Web API, or the terminal (console mode).

A transport does one call and classifies failure for the outbox: ``TransientError`` (Slack
down, 5xx, 429 with a long ``Retry-After``, connection errors — retried forever with backoff)
or ``PermanentError`` (an API error such as ``channel_not_found`` — retried a few times, then
given up). Short waits are absorbed inside the call by slack-sdk's retry handlers: a 429 whose
``Retry-After`` is at most ``max_inline_wait_s`` is slept off and retried in place, 500/503 and
dropped connections are retried once or twice with a short jittered backoff. Every failed
Slack call is counted by method and error (`firebreak_slack_api_errors_total`).

The console prints what Slack would show: the blocks' mrkdwn as rich markup (bold, code,
links, dates, mentions), and a file upload as the path of a temporary file holding it.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import structlog
from prometheus_client import Counter
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from firebreak.bot.console import render_text
from firebreak.bot.messages.blocks import escape as slack_escape

log = structlog.get_logger(__name__)

# API errors that mean "Slack is struggling", not "this request is wrong".
TRANSIENT_ERRORS = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "service_unavailable",
        "fatal_error",
        "internal_error",
        "request_timeout",
        "team_added_to_org",
    }
)


class TransientError(Exception):
    """Try again later; ``retry_after`` (seconds) when Slack said how long to wait."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """Slack refused the request itself (``code`` is the API error)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class Transport(Protocol):
    async def post(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None,
        thread_ts: str | None,
        metadata: dict[str, Any] | None = None,
    ) -> tuple[str, str]:
        """Post a message (with Slack message `metadata`: `event_type`, `event_payload`);
        returns (channel id, ts)."""

    async def find_posted(
        self, channel: str, *, event_type: str, key: str, oldest: datetime
    ) -> str | None:
        """The ts of our message in `channel` since `oldest` whose metadata is `event_type`
        with `event_payload.key` equal to `key`; None when there is none."""

    async def update(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None
    ) -> None:
        """Replace a message in place."""

    async def open_dm(self, user_id: str) -> str:
        """The DM channel id with one user."""

    async def upload(self, channel: str, thread_ts: str, file: ThreadFile) -> None:
        """Share a file in a thread."""

    async def close(self) -> None: ...


@dataclass(frozen=True)
class ThreadFile:
    """A file shared into a thread: a chart (PNG) or a long text (a postmortem draft)."""

    filename: str
    title: str
    content: bytes
    comment: str = ""  # the message the file comes with


# ---------------------------------------------------------------------- Slack


class BoundedRateLimitRetryHandler(AsyncRateLimitErrorRetryHandler):
    """slack-sdk's 429 handler (sleeps ``Retry-After``), but only for short waits: a long
    ``Retry-After`` is handed back to the outbox, which reschedules instead of holding a lane."""

    def __init__(self, max_retry_count: int = 3, max_wait_s: float = 10.0) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait_s = max_wait_s

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        wait = _retry_after(response.headers)
        return wait is None or wait <= self.max_wait_s


def retry_handlers(
    *, max_inline_wait_s: float = 10.0, backoff_factor: float = 0.25
) -> list[AsyncRetryHandler]:
    """The handlers every Firebreak Slack client uses (Bolt's client and the outbox's)."""
    backoff = BackoffRetryIntervalCalculator(backoff_factor=backoff_factor)
    return [
        BoundedRateLimitRetryHandler(max_retry_count=3, max_wait_s=max_inline_wait_s),
        AsyncServerErrorRetryHandler(max_retry_count=2, interval_calculator=backoff),
        AsyncConnectionErrorRetryHandler(max_retry_count=2, interval_calculator=backoff),
    ]


def make_client(
    token: str | None, base_url: str, *, timeout_s: float = 10, max_inline_wait_s: float = 10.0
) -> AsyncWebClient:
    return AsyncWebClient(
        token=token,
        base_url=base_url,
        timeout=int(max(1, timeout_s)),
        retry_handlers=retry_handlers(max_inline_wait_s=max_inline_wait_s),
    )


def _retry_after(headers: Any) -> float | None:
    if not headers:
        return None
    for key, value in dict(headers).items():
        if str(key).lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) else value
            try:
                return float(raw)
            except (TypeError, ValueError):
                return None
    return None


HISTORY_PAGES = 5  # how far back a message is looked for: 5 pages of the channel's history
HISTORY_PAGE_SIZE = 200


def _carries(message: dict[str, Any], event_type: str, key: str) -> bool:
    metadata = message.get("metadata") or {}
    payload = metadata.get("event_payload") or {}
    return metadata.get("event_type") == event_type and payload.get("key") == key


def error_code(exc: BaseException) -> str:
    """A short name for a failed Slack call: the API's error (`channel_not_found`), the HTTP
    status (`http_503`), or the exception's type (`ClientConnectorError`)."""
    if isinstance(exc, SlackApiError):
        data = getattr(exc.response, "data", None)
        code = str(data.get("error") or "") if isinstance(data, dict) else ""
        return code or f"http_{getattr(exc.response, 'status_code', 0)}"
    return type(exc).__name__


def classify(exc: BaseException) -> Exception:
    """A Slack client failure as TransientError or PermanentError."""
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = getattr(response, "status_code", 200)
        code = ""
        data = getattr(response, "data", None)
        if isinstance(data, dict):
            code = str(data.get("error") or "")
        if status == 429:
            return TransientError("rate limited", _retry_after(getattr(response, "headers", {})))
        if status >= 500 or code in TRANSIENT_ERRORS:
            return TransientError(f"Slack answered {status} {code}".strip())
        return PermanentError(code or f"http_{status}")
    if isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError | OSError):
        return TransientError(f"{type(exc).__name__}: {exc}")
    return PermanentError(f"{type(exc).__name__}: {exc}")


class SlackTransport:
    """The Slack Web API through slack-sdk's ``AsyncWebClient`` (``base_url`` from config);
    ``errors`` counts failed calls by method and error."""

    def __init__(self, client: AsyncWebClient, errors: Counter) -> None:
        self.client = client
        self.errors = errors

    def _failed(self, method: str, exc: Exception) -> Exception:
        response = getattr(exc, "response", None)
        api_url = str(getattr(response, "api_url", "") or "")
        if api_url:  # files_upload_v2 makes three calls: name the one that failed
            method = api_url.rstrip("/").rsplit("/", 1)[-1]
        self.errors.labels(method, error_code(exc)[:64]).inc()
        return classify(exc)

    async def post(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None,
        thread_ts: str | None,
        metadata: dict[str, Any] | None = None,
    ) -> tuple[str, str]:
        try:
            response = await self.client.chat_postMessage(
                channel=channel,
                text=text,
                blocks=blocks or None,
                thread_ts=thread_ts,
                metadata=metadata,
                unfurl_links=False,
                unfurl_media=False,
            )
        except Exception as exc:
            raise self._failed("chat.postMessage", exc) from exc
        return str(response["channel"]), str(response["ts"])

    async def find_posted(
        self, channel: str, *, event_type: str, key: str, oldest: datetime
    ) -> str | None:
        """`conversations.history` from `oldest` on, with the messages' metadata, up to
        HISTORY_PAGES pages (needs `channels:history`, `groups:history` for a private one)."""
        cursor = None
        for _ in range(HISTORY_PAGES):
            try:
                response = await self.client.conversations_history(
                    channel=channel,
                    oldest=f"{oldest.timestamp():.6f}",
                    include_all_metadata=True,
                    limit=HISTORY_PAGE_SIZE,
                    cursor=cursor,
                )
            except Exception as exc:
                raise self._failed("conversations.history", exc) from exc
            for message in response.get("messages") or []:
                if _carries(message, event_type, key):
                    return str(message["ts"])
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not response.get("has_more") or not cursor:
                return None
        return None

    async def update(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None
    ) -> None:
        try:
            await self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks or [])
        except Exception as exc:
            raise self._failed("chat.update", exc) from exc

    async def open_dm(self, user_id: str) -> str:
        try:
            response = await self.client.conversations_open(users=user_id)
        except Exception as exc:
            raise self._failed("conversations.open", exc) from exc
        return str(response["channel"]["id"])

    async def upload(self, channel: str, thread_ts: str, file: ThreadFile) -> None:
        """slack-sdk's `files_upload_v2`: files.getUploadURLExternal, the bytes to the URL it
        hands out, files.completeUploadExternal into the thread."""
        try:
            await self.client.files_upload_v2(
                channel=channel,
                thread_ts=thread_ts,
                content=file.content,
                filename=file.filename,
                title=file.title,
                initial_comment=file.comment or None,
            )
        except Exception as exc:
            raise self._failed("files.upload", exc) from exc

    async def close(self) -> None:
        session = getattr(self.client, "session", None)
        if session is not None and not session.closed:
            await session.close()


# ---------------------------------------------------------------------- console


class ConsoleTransport:
    """Prints what would be posted (console mode, `firebreak demo`): no network, no tokens."""

    def __init__(self, console: Console | None = None, files_dir: Path | None = None) -> None:
        self.console = console or Console(highlight=False)
        self.files_dir = files_dir or CONSOLE_FILES_DIR
        self._counter = itertools.count(1)
        self._start = int(time.time())

    def _ts(self) -> str:
        return f"{self._start}.{next(self._counter):06d}"

    def _show(self, title: str, text: str, blocks: list[dict[str, Any]] | None) -> None:
        body = render_text(blocks or [_as_section(text)], markup=True).rstrip()
        self.console.print(Panel(body or escape(text), title=title, title_align="left"))

    async def post(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None,
        thread_ts: str | None,
        metadata: dict[str, Any] | None = None,
    ) -> tuple[str, str]:
        ts = self._ts()
        where = f"#{channel}" + (f" › thread {thread_ts}" if thread_ts else "")
        self._show(f"Slack {where}", text, blocks)
        return channel, ts

    async def find_posted(
        self, channel: str, *, event_type: str, key: str, oldest: datetime
    ) -> str | None:
        """A terminal keeps no history to look in: what was printed is printed again."""
        return None

    async def update(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None
    ) -> None:
        self._show(f"Slack #{channel} (updated {ts})", text, blocks)

    async def open_dm(self, user_id: str) -> str:
        return f"DM-{user_id}"

    async def upload(self, channel: str, thread_ts: str, file: ThreadFile) -> None:
        """A text file is printed where Slack would show it; any other is written to
        `files_dir` under its own name (kept: the point is to open it) and its path printed.
        One directory, one file per name: a chart shared again replaces the last one instead
        of leaving a new temporary file per upload."""
        where = f"Slack #{channel} › thread {thread_ts}"
        if file.filename.endswith((".md", ".txt")):
            title = f"{where} · file {file.filename}"
            text = file.content.decode("utf-8", "replace").rstrip()
            self.console.print(Panel(text, title=title, title_align="left"))
            return
        path = self.files_dir / (Path(file.filename).name or "file.bin")
        await asyncio.to_thread(_write_file, path, file.content)
        caption = f":chart_with_upwards_trend: *{slack_escape(file.title)}*"
        text = f"{file.comment}\n{caption}" if file.comment else caption
        body = render_text([_as_section(text)], markup=True)
        body += f"\n{escape(file.filename)} written to {escape(str(path))}"
        self.console.print(Panel(body, title=where, title_align="left"))

    async def close(self) -> None:
        return None


# Where console mode keeps the files it would have shared in Slack (charts).
CONSOLE_FILES_DIR = Path(tempfile.gettempdir()) / "firebreak-console"


def _write_file(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def _as_section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text or " "}}
