"""A Slack-Web-API-compatible server for tests, spoken to over real sockets.

The real ``slack_sdk`` clients (``AsyncWebClient(token=..., base_url=fake.base_url)``, and
``AsyncWebhookClient`` / Bolt's ``respond`` for ``response_url``) talk to it exactly as they
would talk to ``https://slack.com/api/``. It runs an ``aiohttp.web`` application on
127.0.0.1 (free port) in a background thread with its own event loop, so it works from both
sync and async tests, and from code that runs in other threads.

What it gives a test:

* the methods a bot uses: ``auth.test``, ``chat.postMessage``, ``chat.update``,
  ``chat.delete``, ``chat.postEphemeral``, ``chat.getPermalink``, ``conversations.open``,
  ``conversations.history``, ``conversations.replies``, ``users.info``,
  ``users.lookupByEmail`` (users registered with ``add_user``), ``usergroups.users.list``
  (groups registered with ``add_usergroup``), ``reactions.add``,
  ``views.open`` / ``views.update`` / ``views.push``, and file uploads the way
  ``files_upload_v2`` makes them (``files.getUploadURLExternal``, a POST of the bytes to the
  upload URL it hands out, ``files.completeUploadExternal`` sharing them into a channel or a
  thread); anything else answers ``unknown_method``;
* Slack's request handling: form-encoded, JSON and query-string arguments; the bot token from
  ``Authorization: Bearer`` (or a ``token`` argument) -> ``not_authed`` / ``invalid_auth``;
  cheap validation (``channel_not_found``, ``no_text``, ``message_not_found``,
  ``invalid_blocks`` for more than 50 blocks or for Block Kit limits, ``msg_too_long``);
* a record of every call (``calls("chat.postMessage")``), the messages as Slack now holds them
  (``message(channel, ts)``, ``thread(channel, ts)``; ``post_as_user`` adds a person's),
  ``conversations.history`` paged as Slack pages it (``oldest``, ``latest``, ``limit``,
  ``cursor``; message ``metadata`` only with ``include_all_metadata``), ``response_url`` endpoints
  (``response_url()`` -> ``.../response/<id>``, recorded as method ``"response_url"``);
* fault scripting: ``rate_limit(method, times=, retry_after=)`` (HTTP 429 + ``Retry-After``),
  ``http_error(method, status=500, times=)``, ``api_error(method, "error_code", times=)``
  and ``outage = True`` (every request answers 503). ``"*"`` scripts every method.

Use it as a context manager (sync or async), or through the ``fake_slack`` fixture
(``pytest_plugins = ["tests.fakes.slack_api"]`` in a conftest makes it available).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiohttp import web

DEFAULT_TOKEN = "xoxb-test-token"
BOT_USER_ID = "U0FIREBREAK"
BOT_ID = "B0FIREBREAK"
APP_ID = "A0FIREBREAK"
TEAM_ID = "T0FIREBREAK"
TEAM_DOMAIN = "firebreak-test"

MAX_BLOCKS = 50
MAX_TEXT = 40_000
ANY_METHOD = "*"
RESPONSE_URL_METHOD = "response_url"
UPLOAD_METHOD = "upload"  # the POST of a file's bytes to its upload URL

# Arguments Slack accepts as JSON strings inside form-encoded bodies.
_JSON_ARGS = ("blocks", "attachments", "view", "metadata")


@dataclass(frozen=True)
class RecordedCall:
    """One request the fake received, and what it answered."""

    method: str  # "chat.postMessage", ... or "response_url"
    params: dict[str, Any]  # query + form/JSON body merged; JSON-string args decoded
    at: float  # time.time() when it arrived
    http_method: str
    content_type: str
    headers: dict[str, str]
    status: int  # HTTP status answered
    response: Any  # the JSON body answered (dict), or the text
    path: str = ""

    @property
    def ok(self) -> bool:
        return (
            self.status == 200 and isinstance(self.response, dict) and bool(self.response.get("ok"))
        )

    @property
    def error(self) -> str | None:
        if isinstance(self.response, dict):
            return self.response.get("error")
        return None


@dataclass
class _Fault:
    kind: str  # "ratelimit" | "http" | "error"
    remaining: int
    status: int = 200
    retry_after: int = 1
    error: str = ""


@dataclass
class _Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class _ApiError(Exception):
    """An API-level error answered as ``{"ok": false, "error": code}`` (HTTP 200)."""

    def __init__(self, code: str, **extra: Any) -> None:
        super().__init__(code)
        self.code = code
        self.extra = extra


class FakeSlackApi:
    """A running fake of the Slack Web API. ``with FakeSlackApi() as slack: ...``."""

    def __init__(
        self,
        *,
        tokens: tuple[str, ...] | list[str] = (DEFAULT_TOKEN,),
        channels: set[str] | None = None,
        start_ts: int = 1732290000,
        host: str = "127.0.0.1",
    ) -> None:
        """``channels``: when given, only these ids (plus DMs the fake opened) exist."""
        self.tokens = tuple(tokens)
        self.token = self.tokens[0]
        self.channels = set(channels) if channels is not None else None
        self.bot_user_id = BOT_USER_ID
        self.bot_id = BOT_ID
        self.app_id = APP_ID
        self.team_id = TEAM_ID
        self.outage = False
        self.latency_s = 0.0  # how long each Web API call takes to answer
        self.max_in_flight = 0  # the most Web API calls answered at once (reset at will)
        self._in_flight = 0
        self._host = host
        self._port: int | None = None
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._calls: list[RecordedCall] = []
        self._faults: dict[str, list[_Fault]] = {}
        self._messages: dict[tuple[str, str], dict[str, Any]] = {}
        self._users: dict[str, dict[str, Any]] = {}
        self._usergroups: dict[str, list[str]] = {}
        self._dms: dict[str, str] = {}
        self._views: dict[str, dict[str, Any]] = {}
        self._files: dict[str, dict[str, Any]] = {}  # id -> name, length, content (once sent)
        self._ts_counter = itertools.count(1)
        self._start_us = start_ts * 1_000_000
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "api.test": self._api_test,
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.open": self._conversations_open,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "usergroups.users.list": self._usergroups_users_list,
            "reactions.add": self._reactions_add,
            "views.open": self._views_open,
            "views.push": self._views_open,
            "views.update": self._views_update,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
        }

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeSlackApi:
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # report start failures to the caller
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-slack-api", daemon=True)
        self._thread.start()
        if not ready.wait(10) or failure:
            raise RuntimeError(f"fake Slack API did not start: {failure}")
        return self

    async def _serve(self) -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._on_api)
        app.router.add_route("*", "/response/{key}", self._on_response_url)
        app.router.add_route("*", "/upload/{file_id}", self._on_upload)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        loop = self._loop
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> FakeSlackApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> FakeSlackApi:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("fake Slack API is not running")
        return f"http://{self._host}:{self._port}"

    @property
    def base_url(self) -> str:
        """What to pass as ``AsyncWebClient(base_url=...)`` / ``slack.api_base_url``."""
        return f"{self.url}/api/"

    def response_url(self, key: str | None = None) -> str:
        """A fresh ``response_url`` served (and recorded) by this fake."""
        return f"{self.url}/response/{key or uuid.uuid4().hex}"

    def client(self, token: str | None = None, **kwargs: Any) -> Any:
        """An ``AsyncWebClient`` pointed at this fake."""
        from slack_sdk.web.async_client import AsyncWebClient

        return AsyncWebClient(token=token or self.token, base_url=self.base_url, **kwargs)

    # ------------------------------------------------------------------ queries

    def calls(self, method: str | None = None, *, ok: bool | None = None) -> list[RecordedCall]:
        """Recorded calls, oldest first; optionally of one method and/or only (un)successful."""
        with self._lock:
            found = [c for c in self._calls if method is None or c.method == method]
        if ok is not None:
            found = [c for c in found if c.ok == ok]
        return found

    def last_call(self, method: str) -> RecordedCall:
        found = self.calls(method)
        if not found:
            raise AssertionError(f"no {method} call recorded; got {self.methods_called()}")
        return found[-1]

    def methods_called(self) -> list[str]:
        with self._lock:
            return [c.method for c in self._calls]

    def responses(self, key: str | None = None) -> list[RecordedCall]:
        """POSTs received on ``response_url``s (optionally one of them, by its key)."""
        found = self.calls(RESPONSE_URL_METHOD)
        if key is not None:
            found = [c for c in found if c.path.rsplit("/", 1)[-1] == key]
        return found

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def post_as_user(self, channel: str, text: str, user: str = "U0SOMEONE") -> str:
        """A person's message in `channel` (not a call: it is simply there, as when someone
        writes in the channel); its ts."""
        with self._lock:
            ts = self._next_ts()
            self._messages[(channel, ts)] = {
                "type": "message",
                "user": user,
                "team": self.team_id,
                "text": text,
                "ts": ts,
                "channel": channel,
            }
            self._changed.notify_all()
        return ts

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        """The message as Slack now holds it (after updates). KeyError if none."""
        with self._lock:
            return dict(self._messages[(channel, ts)])

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Messages currently held (not deleted), oldest first."""
        with self._lock:
            found = [m for (ch, _), m in self._messages.items() if channel in (None, ch)]
        return sorted((dict(m) for m in found), key=lambda m: _ts_key(m["ts"]))

    def thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """Replies in a thread (without the parent), oldest first."""
        return [
            m
            for m in self.messages(channel)
            if m.get("thread_ts") == thread_ts and m["ts"] != thread_ts
        ]

    def uploaded(self, file_id: str) -> bytes:
        """The bytes a client sent to a file's upload URL. KeyError if none."""
        with self._lock:
            content = self._files[file_id].get("content")
        if content is None:
            raise KeyError(f"{file_id} was never uploaded")
        return content

    def add_user(self, user_id: str, name: str, *, real_name: str | None = None, **extra: Any):
        """Register a user for ``users.info`` (otherwise U…/W… ids get a generated profile)."""
        with self._lock:
            self._users[user_id] = _user(user_id, name, real_name or name.title(), **extra)

    def add_usergroup(self, group_id: str, users: list[str]) -> None:
        """Register (or change) a user group's members for ``usergroups.users.list``."""
        with self._lock:
            self._usergroups[group_id] = list(users)

    def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> list[RecordedCall]:
        """Block until ``count`` calls of ``method`` were recorded (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [c for c in self._calls if c.method == method]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} {method} call(s) within {timeout}s, got {len(found)}; "
                        f"calls: {[c.method for c in self._calls]}"
                    )
                self._changed.wait(left)

    async def await_calls(
        self,
        method: str,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 - mirrors wait_for; polling, not awaiting
    ) -> list[RecordedCall]:
        """``wait_for`` for async tests (does not block the event loop)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.calls(method)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"expected {count} {method} call(s) within {timeout}s, got {len(found)}; "
                    f"calls: {self.methods_called()}"
                )
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------------ fault scripting

    def rate_limit(self, method: str, *, times: int = 1, retry_after: int = 1) -> None:
        """The next ``times`` calls of ``method`` answer HTTP 429 with ``Retry-After``."""
        self._add_fault(method, _Fault("ratelimit", times, status=429, retry_after=retry_after))

    def http_error(self, method: str, status: int = 500, *, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` answer this HTTP status (500, 502, 503…)."""
        self._add_fault(method, _Fault("http", times, status=status))

    def api_error(self, method: str, error: str, *, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` answer ``{"ok": false, "error": error}``."""
        self._add_fault(method, _Fault("error", times, error=error))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self.outage = False

    def _add_fault(self, method: str, fault: _Fault) -> None:
        if fault.remaining < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._faults.setdefault(method, []).append(fault)

    def _take_fault(self, method: str) -> _Fault | None:
        with self._lock:
            for key in (method, ANY_METHOD):
                queue = self._faults.get(key)
                if queue:
                    fault = queue[0]
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        queue.pop(0)
                    return fault
        return None

    def _scripted_reply(self, method: str) -> _Reply | None:
        if self.outage:
            return _Reply(503, {"ok": False, "error": "service_unavailable"})
        fault = self._take_fault(method)
        if fault is None:
            return None
        if fault.kind == "ratelimit":
            return _Reply(
                429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(fault.retry_after)}
            )
        if fault.kind == "http":
            return _Reply(fault.status, {"ok": False, "error": "fatal_error"})
        return _Reply(200, {"ok": False, "error": fault.error})

    # ------------------------------------------------------------------ HTTP layer

    async def _on_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self._in_flight += 1  # the fake's own event loop: no lock needed
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            await asyncio.sleep(self.latency_s)
            params, parse_error = await _read_params(request)
            reply = self._scripted_reply(method)
            if reply is None:
                reply = self._dispatch(method, request, params, parse_error)
            return self._answer(method, request, params, reply)
        finally:
            self._in_flight -= 1

    async def _on_response_url(self, request: web.Request) -> web.Response:
        params, parse_error = await _read_params(request)
        reply = self._scripted_reply(RESPONSE_URL_METHOD)
        if reply is None:
            if request.method != "POST":
                reply = _Reply(405, "method not allowed")
            elif parse_error or not (
                params.get("text") or params.get("blocks") or params.get("delete_original")
            ):
                reply = _Reply(400, "no_text")
            else:
                reply = _Reply(200, "ok")
        return self._answer(RESPONSE_URL_METHOD, request, params, reply)

    async def _on_upload(self, request: web.Request) -> web.Response:
        """The upload URL: the raw bytes (as slack-sdk sends them) or a multipart file."""
        file_id = request.match_info["file_id"]
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            parts = [v for v in form.values() if isinstance(v, web.FileField)]
            body = parts[0].file.read() if parts else b""
        else:
            body = await request.read()
        reply = self._scripted_reply(UPLOAD_METHOD)
        if reply is None:
            with self._lock:
                upload = self._files.get(file_id)
                if request.method != "POST":
                    reply = _Reply(405, "method not allowed")
                elif upload is None:
                    reply = _Reply(404, "file_not_found")
                elif len(body) != upload["length"]:
                    reply = _Reply(400, f"length {len(body)} != {upload['length']}")
                else:
                    upload["content"] = body
                    reply = _Reply(200, f"OK - {len(body)}")
        params = {"file_id": file_id, "bytes": len(body)}
        return self._answer(UPLOAD_METHOD, request, params, reply)

    def _answer(
        self, method: str, request: web.Request, params: dict[str, Any], reply: _Reply
    ) -> web.Response:
        call = RecordedCall(
            method=method,
            params=params,
            at=time.time(),
            http_method=request.method,
            content_type=request.content_type,
            headers=dict(request.headers),
            status=reply.status,
            response=reply.body,
            path=request.path,
        )
        with self._changed:
            self._calls.append(call)
            self._changed.notify_all()
        if isinstance(reply.body, dict):
            return web.json_response(reply.body, status=reply.status, headers=reply.headers)
        return web.Response(text=str(reply.body), status=reply.status, headers=reply.headers)

    def _dispatch(
        self, method: str, request: web.Request, params: dict[str, Any], parse_error: str | None
    ) -> _Reply:
        handler = self._handlers.get(method)
        if handler is None:
            return _Reply(200, {"ok": False, "error": "unknown_method"})
        if method != "api.test":
            auth = request.headers.get("Authorization", "")
            token = auth[7:].strip() if auth.lower().startswith("bearer ") else params.get("token")
            if not token:
                return _Reply(200, {"ok": False, "error": "not_authed"})
            if token not in self.tokens:
                return _Reply(200, {"ok": False, "error": "invalid_auth"})
        if parse_error:
            return _Reply(200, {"ok": False, "error": parse_error})
        try:
            with self._lock:
                body = handler(params)
        except _ApiError as exc:
            return _Reply(200, {"ok": False, "error": exc.code, **exc.extra})
        return _Reply(200, {"ok": True, **body})

    # ------------------------------------------------------------------ helpers

    def _next_ts(self) -> str:
        micros = self._start_us + next(self._ts_counter) * 100
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _channel(self, params: dict[str, Any], key: str = "channel") -> str:
        channel = params.get(key)
        if not channel or not isinstance(channel, str):
            raise _ApiError("channel_not_found")
        if channel[:1] in {"U", "W"}:  # posting to a user id goes to the DM with them
            return self._dm_for(channel)
        known = self.channels is None or channel in self.channels or channel in self._dms.values()
        if not known:
            raise _ApiError("channel_not_found")
        return channel

    def _dm_for(self, users: str) -> str:
        if users not in self._dms:
            self._dms[users] = f"D{len(self._dms) + 1:08d}"
        return self._dms[users]

    def _stored(self, channel: str, ts: Any) -> dict[str, Any]:
        message = self._messages.get((channel, str(ts)))
        if message is None:
            raise _ApiError("message_not_found")
        return message

    # ------------------------------------------------------------------ methods

    def _api_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"args": {k: v for k, v in params.items() if k != "token"}}

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": "Firebreak Test",
            "user": "firebreak",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params)
        _check_content(params)
        ts = self._next_ts()
        message = self._new_message(ts, params)
        self._messages[(channel, ts)] = {**message, "channel": channel}
        if message.get("thread_ts"):
            parent = self._messages.get((channel, message["thread_ts"]))
            if parent is not None:
                parent["reply_count"] = parent.get("reply_count", 0) + 1
        return {"channel": channel, "ts": ts, "message": message}

    def _new_message(self, ts: str, params: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "text": params.get("text") or "",
            "ts": ts,
        }
        for key in ("blocks", "attachments", "metadata"):
            if params.get(key):
                message[key] = params[key]
        if params.get("thread_ts"):
            message["thread_ts"] = str(params["thread_ts"])
        return message

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params)
        if not params.get("ts"):
            raise _ApiError("message_not_found")
        stored = self._stored(channel, params["ts"])
        _check_content(params)
        for key in ("text", "blocks", "attachments", "metadata"):
            if key in params:
                stored[key] = params[key]
        stored["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        public = {k: v for k, v in stored.items() if k != "channel"}
        return {"channel": channel, "ts": stored["ts"], "text": stored["text"], "message": public}

    def _chat_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params)
        self._stored(channel, params.get("ts"))
        del self._messages[(channel, str(params["ts"]))]
        return {"channel": channel, "ts": str(params["ts"])}

    def _chat_post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        self._channel(params)
        if not params.get("user"):
            raise _ApiError("user_not_found")
        _check_content(params)
        return {"message_ts": self._next_ts()}

    def _chat_get_permalink(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params)
        ts = str(params.get("message_ts") or "")
        self._stored(channel, ts)
        link = f"https://{TEAM_DOMAIN}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        return {"channel": channel, "permalink": link}

    def _conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        users = params.get("users")
        if params.get("channel"):
            return {"channel": {"id": self._channel(params)}, "already_open": True}
        if not users:
            raise _ApiError("users_list_not_supplied")
        if isinstance(users, list):
            users = ",".join(users)
        for user in users.split(","):
            if user.strip()[:1] not in {"U", "W"}:
                raise _ApiError("user_not_found")
        already = users in self._dms
        return {"channel": {"id": self._dm_for(users)}, "no_op": already, "already_open": already}

    def _conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        """Top-level messages, newest first, as Slack pages them: `oldest` / `latest`
        (exclusive unless `inclusive`), `limit` (default 100, at most 999), `cursor` (an opaque
        `response_metadata.next_cursor`); message `metadata` only with `include_all_metadata`."""
        channel = self._channel(params)
        found = [
            m
            for (ch, ts), m in self._messages.items()
            if ch == channel and m.get("thread_ts") in (None, ts) and _in_window(m["ts"], params)
        ]
        found.sort(key=lambda m: _ts_key(m["ts"]), reverse=True)
        start = int(params.get("cursor") or 0)
        limit = min(int(params.get("limit") or 100), 999)
        page = found[start : start + limit]
        with_metadata = _truthy(params.get("include_all_metadata"))
        more = start + limit < len(found)
        return {
            "messages": [_public(m, metadata=with_metadata) for m in page],
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params)
        ts = str(params.get("ts") or "")
        if (channel, ts) not in self._messages:
            raise _ApiError("thread_not_found")
        found = [
            m
            for (ch, mts), m in self._messages.items()
            if ch == channel and (mts == ts or m.get("thread_ts") == ts)
        ]
        found.sort(key=lambda m: _ts_key(m["ts"]))
        return {"messages": [_public(m) for m in found], "has_more": False}

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user_id = params.get("user")
        if not isinstance(user_id, str) or not user_id:
            raise _ApiError("user_not_found")
        if user_id in self._users:
            return {"user": self._users[user_id]}
        if user_id[:1] not in {"U", "W"}:
            raise _ApiError("user_not_found")
        name = f"user-{user_id.lower()}"
        return {"user": _user(user_id, name, f"User {user_id}")}

    def _users_lookup_by_email(self, params: dict[str, Any]) -> dict[str, Any]:
        email = params.get("email")
        if not isinstance(email, str) or not email:
            raise _ApiError("invalid_arguments")
        for user in self._users.values():
            if user["profile"].get("email", "").lower() == email.lower():
                return {"user": user}
        raise _ApiError("users_not_found")

    def _usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        """As Slack answers it: ``{"ok": true, "users": ["U…", "W…"]}``."""
        group = params.get("usergroup")
        if not isinstance(group, str) or not group:
            raise _ApiError("invalid_arguments")
        if group not in self._usergroups:
            raise _ApiError("no_such_subteam")
        return {"users": list(self._usergroups[group])}

    def _reactions_add(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params)
        message = self._stored(channel, params.get("timestamp"))
        name = params.get("name")
        if not name:
            raise _ApiError("invalid_name")
        reactions = message.setdefault("reactions", [])
        if any(r["name"] == name for r in reactions):
            raise _ApiError("already_reacted")
        reactions.append({"name": name, "users": [self.bot_user_id], "count": 1})
        return {}

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("trigger_id"):
            raise _ApiError("invalid_arguments")
        view = params.get("view")
        if not isinstance(view, dict) or view.get("type") not in {"modal", "home"}:
            raise _ApiError("invalid_arguments")
        errors = block_errors(view.get("blocks") or [], limit=100)
        if errors:
            raise _ApiError("invalid_blocks", errors=errors)
        view_id = f"V{len(self._views) + 1:08d}"
        self._views[view_id] = {"id": view_id, "team_id": self.team_id, **view}
        return {"view": self._views[view_id]}

    def _views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        view_id = params.get("view_id")
        if view_id not in self._views:
            raise _ApiError("not_found")
        view = params.get("view")
        if not isinstance(view, dict):
            raise _ApiError("invalid_arguments")
        self._views[view_id] = {"id": view_id, "team_id": self.team_id, **view}
        return {"view": self._views[view_id]}

    def _files_get_upload_url(self, params: dict[str, Any]) -> dict[str, Any]:
        filename, length = params.get("filename"), str(params.get("length") or "")
        if not filename or not length.isdigit() or int(length) < 1:
            raise _ApiError("invalid_arguments")
        file_id = f"F{len(self._files) + 1:09d}"
        self._files[file_id] = {"name": str(filename), "length": int(length), "content": None}
        return {"upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            files = params.get("files")
            listed = json.loads(files) if isinstance(files, str) else files
        except ValueError:
            raise _ApiError("invalid_arguments") from None
        if not isinstance(listed, list) or not listed:
            raise _ApiError("invalid_arguments")
        shared = []
        for item in listed:
            upload = self._files.get(item.get("id")) if isinstance(item, dict) else None
            if upload is None or upload["content"] is None:
                raise _ApiError("file_not_found")
            shared.append(
                {
                    "id": item["id"],
                    "name": upload["name"],
                    "title": item.get("title") or upload["name"],
                    "size": upload["length"],
                }
            )
        if params.get("channel_id"):
            channel = self._channel(params, "channel_id")
            ts = self._next_ts()
            message = self._new_message(ts, {"text": params.get("initial_comment") or ""})
            message["files"] = shared
            if params.get("thread_ts"):
                message["thread_ts"] = str(params["thread_ts"])
                parent = self._messages.get((channel, message["thread_ts"]))
                if parent is not None:
                    parent["reply_count"] = parent.get("reply_count", 0) + 1
            self._messages[(channel, ts)] = {**message, "channel": channel}
        return {"files": shared}


# ---------------------------------------------------------------------- module helpers


async def _read_params(request: web.Request) -> tuple[dict[str, Any], str | None]:
    """Query string + body (JSON or form), the way Slack reads them."""
    params: dict[str, Any] = dict(request.query)
    raw = await request.read()
    if not raw:
        return params, None
    if request.content_type == "application/json":
        try:
            body = json.loads(raw)
        except ValueError:
            return params, "invalid_json"
        if not isinstance(body, dict):
            return params, "invalid_json"
        params.update(body)
        return params, None
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    else:
        params.update(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    for key in _JSON_ARGS:
        value = params.get(key)
        if isinstance(value, str) and value:
            try:
                params[key] = json.loads(value)
            except ValueError:
                return params, f"invalid_{key}_format" if key != "view" else "invalid_arguments"
    return params, None


def _check_content(params: dict[str, Any]) -> None:
    blocks = params.get("blocks")
    if not (params.get("text") or blocks or params.get("attachments")):
        raise _ApiError("no_text")
    text = params.get("text") or ""
    if isinstance(text, str) and len(text) > MAX_TEXT:
        raise _ApiError("msg_too_long")
    if blocks is not None:
        errors = block_errors(blocks, limit=MAX_BLOCKS)
        if errors:
            raise _ApiError(
                "invalid_blocks",
                errors=errors,
                response_metadata={"messages": [f"[ERROR] {e}" for e in errors]},
            )


def _text_of(obj: Any) -> str | None:
    if isinstance(obj, dict) and isinstance(obj.get("text"), str):
        return obj["text"]
    return None


def block_errors(blocks: Any, *, limit: int) -> list[str]:
    """The Block Kit checks that are cheap to make (a subset of Slack's)."""
    if not isinstance(blocks, list):
        return ["blocks must be an array"]
    errors: list[str] = []
    if len(blocks) > limit:
        errors.append(f"no more than {limit} items allowed [json-pointer:/blocks]")
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"[json-pointer:/blocks/{i}]"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            errors.append(f"missing required field: type {where}")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if len(block_id) > 255:
                errors.append(f"must be less than 256 characters {where}/block_id")
            if block_id in block_ids:
                errors.append(f"duplicate block_id {block_id!r} {where}/block_id")
            block_ids.add(block_id)
        kind = block["type"]
        if kind == "section":
            text = _text_of(block.get("text"))
            fields = block.get("fields") or []
            if text is None and not fields:
                errors.append(f"must provide text or fields {where}")
            if text is not None and not 1 <= len(text) <= 3000:
                errors.append(f"text must be 1-3000 characters {where}/text")
            if len(fields) > 10:
                errors.append(f"no more than 10 fields allowed {where}/fields")
            for field_obj in fields:
                if len(_text_of(field_obj) or "") > 2000:
                    errors.append(f"field text must be at most 2000 characters {where}/fields")
            if block.get("accessory") is not None:
                errors.extend(_element_errors(block["accessory"], f"{where}/accessory"))
        elif kind == "header":
            text = block.get("text")
            if not isinstance(text, dict) or text.get("type") != "plain_text":
                errors.append(f"header text must be plain_text {where}/text")
            elif not 1 <= len(text.get("text", "")) <= 150:
                errors.append(f"must be 1-150 characters {where}/text")
        elif kind == "context":
            elements = block.get("elements") or []
            if not 1 <= len(elements) <= 10:
                errors.append(f"context needs 1-10 elements {where}/elements")
            for element in elements:
                if element.get("type") in {"mrkdwn", "plain_text"} and not _text_of(element):
                    errors.append(f"context text must not be empty {where}/elements")
        elif kind == "actions":
            elements = block.get("elements") or []
            if not 1 <= len(elements) <= 25:
                errors.append(f"actions needs 1-25 elements {where}/elements")
            action_ids = [e.get("action_id") for e in elements if e.get("action_id")]
            if len(action_ids) != len(set(action_ids)):
                errors.append(f"duplicate action_id {where}/elements")
            for j, element in enumerate(elements):
                errors.extend(_element_errors(element, f"{where}/elements/{j}"))
    return errors


def _element_errors(element: Any, where: str) -> list[str]:
    if not isinstance(element, dict):
        return [f"element must be an object {where}"]
    errors: list[str] = []
    if len(element.get("action_id") or "") > 255:
        errors.append(f"action_id must be at most 255 characters {where}/action_id")
    if element.get("type") == "button":
        text = element.get("text")
        if not isinstance(text, dict) or text.get("type") != "plain_text":
            errors.append(f"button text must be plain_text {where}/text")
        elif not 1 <= len(text.get("text", "")) <= 75:
            errors.append(f"button text must be 1-75 characters {where}/text")
        if len(element.get("value") or "") > 2000:
            errors.append(f"value must be at most 2000 characters {where}/value")
        if element.get("style") not in (None, "primary", "danger"):
            errors.append(f"style must be primary or danger {where}/style")
    return errors


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros or 0)


def _public(message: dict[str, Any], *, metadata: bool = True) -> dict[str, Any]:
    hidden = {"channel"} if metadata else {"channel", "metadata"}
    return {k: v for k, v in message.items() if k not in hidden}


def _truthy(value: Any) -> bool:
    return str(value).lower() in {"1", "true"}


def _in_window(ts: str, params: dict[str, Any]) -> bool:
    """Within conversations.history's `oldest` .. `latest`."""
    inclusive = _truthy(params.get("inclusive"))
    at = _ts_key(ts)
    oldest, latest = params.get("oldest"), params.get("latest")
    if oldest and (at < _ts_key(str(oldest)) or (at == _ts_key(str(oldest)) and not inclusive)):
        return False
    return not (
        latest and (at > _ts_key(str(latest)) or (at == _ts_key(str(latest)) and not inclusive))
    )


def _user(user_id: str, name: str, real_name: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": user_id,
        "team_id": TEAM_ID,
        "name": name,
        "real_name": real_name,
        "deleted": False,
        "is_bot": False,
        "tz": "Europe/Amsterdam",
        "profile": {"display_name": name, "real_name": real_name, "email": f"{name}@example.com"},
        **extra,
    }


@pytest.fixture
def fake_slack() -> Iterator[FakeSlackApi]:
    """A running ``FakeSlackApi`` for one test."""
    with FakeSlackApi() as slack:
        yield slack


__all__ = [
    "ANY_METHOD",
    "BOT_USER_ID",
    "DEFAULT_TOKEN",
    "RESPONSE_URL_METHOD",
    "TEAM_ID",
    "UPLOAD_METHOD",
    "FakeSlackApi",
    "RecordedCall",
    "block_errors",
    "fake_slack",
]
