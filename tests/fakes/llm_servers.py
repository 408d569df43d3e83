"""Scripted LLM servers for tests, spoken to over real sockets.

Two fakes, each an ``aiohttp.web`` application on 127.0.0.1 (free port) in a background thread
with its own event loop, so the REAL clients talk to them exactly as to the real services:

* ``ScriptedLLMServer("openai")`` speaks the OpenAI Chat Completions API:
  ``POST /v1/chat/completions`` (a ``chat.completion`` object, or ``chat.completion.chunk``
  server-sent events when the request says ``"stream": true``) and ``GET /v1/models``.
  ``base_url`` ends in ``/v1``, as ``openai`` / ``langchain-openai`` expect.
* ``ScriptedLLMServer("ollama")`` speaks the Ollama API: ``POST /api/chat`` (one JSON object when
  the request says ``"stream": false``, else NDJSON chunks — streaming is Ollama's default),
  ``GET /api/tags``, ``GET /api/version``, ``POST /api/show``.

Every chat request takes the next behaviour from a queue the test scripts::

    server.script(answer({"root_cause": ...}), invalid_json(), http_error(500), slow(5.0))

``answer`` (a JSON string, dict or pydantic model, or plain text), ``invalid_json``,
``http_error`` (status, message, headers such as ``Retry-After``) and ``slow`` (answer only
after a delay longer than the client's timeout). When the queue is empty the server uses
``server.default`` (an ``http_error(500, "script exhausted")`` unless set), so an unscripted
call is loud.

Tool calling: ``tool_call(name, arguments)`` answers with one call (``tool_calls(...)`` with
several), in each provider's own shape: OpenAI ``message.tool_calls[]`` with the arguments as a
JSON string and ``finish_reason: "tool_calls"`` (also streamed as ``delta.tool_calls``
pieces), Ollama ``message.tool_calls[].function.arguments`` as a dict. ``tools(i)`` is the
``tools`` list request ``i`` offered. ``ScriptedLLMServer(..., tools=False)`` plays a model
without tool support: a request carrying ``tools`` answers 400 as OpenAI-compatible servers
and Ollama do, and Ollama's ``/api/show`` leaves ``tools`` out of ``capabilities``.

Every request is recorded *before* it is answered (so timed-out calls are recorded too):
``server.requests`` (all), ``server.chat_requests`` / ``server.chat_calls``, each a
``RecordedRequest`` with ``method``, ``path``, ``headers``, ``raw`` (the body as text) and
``json``. Convenience: ``messages(i)``, ``response_format(i)`` (OpenAI), ``format(i)`` (Ollama),
``all_bodies()``.

Use as a (sync or async) context manager, or through the fixtures ``openai_server``,
``ollama_server`` and ``llm_server`` (parametrised over both); ``pytest_plugins =
["tests.fakes.llm_servers"]`` in a conftest makes them available everywhere. The fixture
functions are named ``fixture_*`` so that a test module can import them (``from
tests.fakes.llm_servers import fixture_llm_server``) without its test arguments shadowing
the imported name.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import pytest
from aiohttp import web

from tests.fakes.serving import ThreadedServer

Flavour = Literal["openai", "ollama"]

DEFAULT_MODEL = "test-model"
OLLAMA_VERSION = "0.12.6"


# --------------------------------------------------------------------------------------------
# Behaviours


@dataclass(frozen=True)
class Behaviour:
    """What the server does with one chat request."""

    kind: Literal["answer", "error"]
    content: str = ""
    status: int = 200
    message: str = ""
    delay_s: float = 0.0
    finish_reason: str = "stop"
    headers: Mapping[str, str] = field(default_factory=dict)
    calls: tuple[ToolCall, ...] = ()  # tool calls instead of (or beside) the content


@dataclass(frozen=True)
class ToolCall:
    """One function call the model makes."""

    name: str
    arguments: Mapping[str, Any]
    id: str = field(default_factory=lambda: "call_" + uuid.uuid4().hex[:24])


def tool_call(name: str, arguments: Mapping[str, Any] | None = None, **extra: Any) -> Behaviour:
    """An answer that calls the tool ``name`` with ``arguments`` (``extra``: a ``content``)."""
    return tool_calls(ToolCall(name, dict(arguments or {})), **extra)


def tool_calls(*calls: ToolCall, content: str = "") -> Behaviour:
    """An answer with several tool calls at once."""
    return Behaviour("answer", content=content, finish_reason="tool_calls", calls=tuple(calls))


def answer(
    content: str | Mapping[str, Any] | Any, *, delay_s: float = 0.0, finish_reason: str = "stop"
) -> Behaviour:
    """A successful answer whose message content is ``content``: a string is sent as is, a
    mapping as JSON, a pydantic model as its JSON."""
    if hasattr(content, "model_dump_json"):
        text = content.model_dump_json()
    elif isinstance(content, Mapping):
        text = json.dumps(content)
    else:
        text = str(content)
    return Behaviour("answer", content=text, delay_s=delay_s, finish_reason=finish_reason)


def invalid_json(
    text: str = "Sure! Here is the analysis you asked for: {root_cause: 'the database'",
) -> Behaviour:
    """A 200 answer whose content is not JSON at all."""
    return Behaviour("answer", content=text)


def http_error(
    status: int = 500,
    message: str = "internal server error",
    *,
    headers: Mapping[str, str] | None = None,
    delay_s: float = 0.0,
) -> Behaviour:
    """An HTTP error with the provider's error body."""
    return Behaviour(
        "error", status=status, message=message, headers=dict(headers or {}), delay_s=delay_s
    )


def slow(delay_s: float, content: str | Mapping[str, Any] | Any = "{}") -> Behaviour:
    """Answer ``content`` only after ``delay_s`` seconds (longer than the client's timeout)."""
    return answer(content, delay_s=delay_s)


SCRIPT_EXHAUSTED = http_error(500, "fake LLM server: script exhausted (no behaviour queued)")


# --------------------------------------------------------------------------------------------
# Records


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    raw: str
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.raw) if self.raw else None


# --------------------------------------------------------------------------------------------
# The server


class ScriptedLLMServer(ThreadedServer):
    """An OpenAI- or Ollama-compatible server answering from a script. See the module doc."""

    shutdown_timeout_s = 1.0  # handlers scripted to think for long are cut short

    def __init__(self, flavour: Flavour, *, model: str = DEFAULT_MODEL, tools: bool = True) -> None:
        if flavour not in ("openai", "ollama"):
            raise ValueError(f"unknown flavour {flavour!r}")
        super().__init__()
        self.name = f"fake {flavour} server"
        self.flavour: Flavour = flavour
        self.model = model
        self.supports_tools = tools  # False: a request offering tools answers 400
        self.default: Behaviour = SCRIPT_EXHAUSTED
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._release: asyncio.Event | None = None

    # -- scripting ---------------------------------------------------------------------------

    def script(self, *behaviours: Behaviour) -> ScriptedLLMServer:
        with self._lock:
            self._queue.extend(behaviours)
        return self

    @property
    def pending(self) -> int:
        """Behaviours scripted but not used yet."""
        with self._lock:
            return len(self._queue)

    def _next(self) -> Behaviour:
        with self._lock:
            return self._queue.popleft() if self._queue else self.default

    # -- records -----------------------------------------------------------------------------

    @property
    def chat_path(self) -> str:
        return "/v1/chat/completions" if self.flavour == "openai" else "/api/chat"

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == self.chat_path]

    @property
    def chat_calls(self) -> int:
        return len(self.chat_requests)

    def body(self, index: int = -1) -> dict[str, Any]:
        """The JSON body of chat request ``index``."""
        return self.chat_requests[index].json

    def messages(self, index: int = -1) -> list[dict[str, Any]]:
        return self.body(index)["messages"]

    def response_format(self, index: int = -1) -> Any:
        """OpenAI: the ``response_format`` the client sent (None if absent)."""
        return self.body(index).get("response_format")

    def format(self, index: int = -1) -> Any:
        """Ollama: the ``format`` the client sent (None if absent)."""
        return self.body(index).get("format")

    def tools(self, index: int = -1) -> list[dict[str, Any]] | None:
        """The ``tools`` chat request ``index`` offered (None if it offered none)."""
        return self.body(index).get("tools")

    def tool_names(self, index: int = -1) -> list[str]:
        return [t["function"]["name"] for t in self.tools(index) or []]

    def all_bodies(self) -> str:
        """Every recorded request body, as received: to assert a secret never got here."""
        with self._lock:
            return "\n".join(r.raw for r in self.requests)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._queue.clear()

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        root = f"http://127.0.0.1:{self.port}"
        return root + "/v1" if self.flavour == "openai" else root

    def _before_stop(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._release is not None:
            loop.call_soon_threadsafe(self._release.set)  # wake handlers still "thinking"

    async def _app(self) -> web.Application:
        self._release = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        if self.flavour == "openai":
            app.router.add_post("/v1/chat/completions", self._openai_chat)
            app.router.add_get("/v1/models", self._openai_models)
        else:
            app.router.add_post("/api/chat", self._ollama_chat)
            app.router.add_get("/api/tags", self._ollama_tags)
            app.router.add_get("/api/version", self._ollama_version)
            app.router.add_post("/api/show", self._ollama_show)
        app.middlewares.append(self._record)
        return app

    # -- plumbing ----------------------------------------------------------------------------

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = (await request.read()).decode("utf-8", errors="replace")
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    request.method, request.path, dict(request.headers), raw, time.monotonic()
                )
            )
        return await handler(request)

    async def _wait(self, seconds: float) -> None:
        if seconds <= 0:
            return
        assert self._release is not None
        try:
            await asyncio.wait_for(self._release.wait(), seconds)
        except TimeoutError:
            pass

    @staticmethod
    def _tokens(text: str) -> int:
        return max(1, len(text) // 4)

    # -- OpenAI ------------------------------------------------------------------------------

    async def _openai_chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return _openai_error(
                400, "We could not parse the JSON body of your request.", "invalid_request_error"
            )
        if body.get("tools") and not self.supports_tools:
            message = f"registry.ollama.ai/library/{self.model} does not support tools"
            return _openai_error(400, message, "invalid_request_error")
        behaviour = self._next()
        await self._wait(behaviour.delay_s)
        if behaviour.kind == "error":
            kind = "server_error" if behaviour.status >= 500 else "invalid_request_error"
            if behaviour.status == 429:
                kind = "rate_limit_exceeded"
            return _openai_error(behaviour.status, behaviour.message, kind, behaviour.headers)

        model = body.get("model") or self.model
        prompt_tokens = self._tokens(json.dumps(body.get("messages", [])))
        completion_tokens = self._tokens(behaviour.content)
        completion_id = "chatcmpl-" + uuid.uuid4().hex[:24]
        content = (behaviour.content or None) if behaviour.calls else behaviour.content
        created = int(time.time())
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": content,
                                "refusal": None,
                                "annotations": [],
                                **_openai_tool_calls(behaviour.calls),
                            },
                            "logprobs": None,
                            "finish_reason": behaviour.finish_reason,
                        }
                    ],
                    "usage": usage,
                    "service_tier": "default",
                    "system_fingerprint": "fp_fake0001",
                },
                headers={"x-request-id": "req_" + uuid.uuid4().hex},
            )

        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)

        def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> bytes:
            payload = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake0001",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
                **extra,
            }
            return f"data: {json.dumps(payload)}\n\n".encode()

        await response.write(chunk({"role": "assistant", "content": "", "refusal": None}, None))
        for piece in _pieces(behaviour.content):
            await response.write(chunk({"content": piece}, None))
        for delta in _openai_tool_call_deltas(behaviour.calls):
            await response.write(chunk({"tool_calls": [delta]}, None))
        await response.write(chunk({}, behaviour.finish_reason))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage_chunk = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage,
            }
            await response.write(f"data: {json.dumps(usage_chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _openai_models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {
                        "id": self.model,
                        "object": "model",
                        "created": 1_700_000_000,
                        "owned_by": "firebreak-tests",
                    }
                ],
            }
        )

    # -- Ollama ------------------------------------------------------------------------------

    async def _ollama_chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "invalid character in JSON body"}, status=400)
        if not body.get("model"):
            return web.json_response({"error": "model is required"}, status=400)
        if body.get("tools") and not self.supports_tools:
            return web.json_response(
                {"error": f"registry.ollama.ai/library/{body['model']} does not support tools"},
                status=400,
            )
        behaviour = self._next()
        await self._wait(behaviour.delay_s)
        if behaviour.kind == "error":
            return web.json_response(
                {"error": behaviour.message}, status=behaviour.status, headers=behaviour.headers
            )

        model = body["model"]
        prompt_tokens = self._tokens(json.dumps(body.get("messages", [])))
        completion_tokens = self._tokens(behaviour.content)
        done_reason = "length" if behaviour.finish_reason == "length" else "stop"
        stats = {
            "done_reason": done_reason,
            "done": True,
            "total_duration": 1_234_567_890,
            "load_duration": 12_345_678,
            "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": 123_456_789,
            "eval_count": completion_tokens,
            "eval_duration": 987_654_321,
        }
        if body.get("stream", True) is False:
            return web.json_response(
                {
                    "model": model,
                    "created_at": _ollama_now(),
                    "message": {
                        "role": "assistant",
                        "content": behaviour.content,
                        **_ollama_tool_calls(behaviour.calls),
                    },
                    **stats,
                }
            )

        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        for piece in _pieces(behaviour.content):
            line = {
                "model": model,
                "created_at": _ollama_now(),
                "message": {"role": "assistant", "content": piece},
                "done": False,
            }
            await response.write((json.dumps(line) + "\n").encode())
        if behaviour.calls:  # Ollama sends the calls whole, in a chunk of their own
            line = {
                "model": model,
                "created_at": _ollama_now(),
                "message": {
                    "role": "assistant",
                    "content": "",
                    **_ollama_tool_calls(behaviour.calls),
                },
                "done": False,
            }
            await response.write((json.dumps(line) + "\n").encode())
        final = {
            "model": model,
            "created_at": _ollama_now(),
            "message": {"role": "assistant", "content": ""},
            **stats,
        }
        await response.write((json.dumps(final) + "\n").encode())
        await response.write_eof()
        return response

    async def _ollama_tags(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "models": [
                    {
                        "name": self.model,
                        "model": self.model,
                        "modified_at": "2026-01-01T00:00:00.000000000Z",
                        "size": 4_920_753_328,
                        "digest": "0" * 64,
                        "details": {
                            "parent_model": "",
                            "format": "gguf",
                            "family": "llama",
                            "families": ["llama"],
                            "parameter_size": "8.0B",
                            "quantization_level": "Q4_K_M",
                        },
                    }
                ]
            }
        )

    async def _ollama_version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": OLLAMA_VERSION})

    async def _ollama_show(self, request: web.Request) -> web.Response:
        body = await request.json()
        name = body.get("model") or body.get("name")
        if name != self.model:
            return web.json_response({"error": f"model '{name}' not found"}, status=404)
        return web.json_response(
            {
                "modelfile": f"FROM {self.model}",
                "parameters": "",
                "template": "{{ .Prompt }}",
                "details": {
                    "format": "gguf",
                    "family": "llama",
                    "parameter_size": "8.0B",
                    "quantization_level": "Q4_K_M",
                },
                "model_info": {},
                "capabilities": ["completion", "tools"] if self.supports_tools else ["completion"],
                "modified_at": "2026-01-01T00:00:00.000000000Z",
            }
        )


def _openai_error(
    status: int, message: str, kind: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": kind, "param": None, "code": None}},
        status=status,
        headers=dict(headers or {}),
    )


def _openai_tool_calls(calls: tuple[ToolCall, ...]) -> dict[str, Any]:
    if not calls:
        return {}
    return {
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in calls
        ]
    }


def _openai_tool_call_deltas(calls: tuple[ToolCall, ...]) -> Iterator[dict[str, Any]]:
    """Streamed calls: the id and name first, then the JSON arguments in pieces."""
    for index, call in enumerate(calls):
        yield {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        for piece in _pieces(json.dumps(call.arguments)):
            yield {"index": index, "function": {"arguments": piece}}


def _ollama_tool_calls(calls: tuple[ToolCall, ...]) -> dict[str, Any]:
    if not calls:
        return {}
    return {
        "tool_calls": [
            {"function": {"name": call.name, "arguments": dict(call.arguments)}} for call in calls
        ]
    }


def _ollama_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _pieces(text: str, size: int = 16) -> Iterator[str]:
    for start in range(0, len(text), size):
        yield text[start : start + size]


def closed_port_url(flavour: Flavour = "openai") -> str:
    """A base URL on which nothing listens (connection refused), for connect-error tests."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    root = f"http://127.0.0.1:{port}"
    return root + "/v1" if flavour == "openai" else root


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(name="openai_server")
def fixture_openai_server() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer("openai") as server:
        yield server


@pytest.fixture(name="ollama_server")
def fixture_ollama_server() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer("ollama") as server:
        yield server


@pytest.fixture(name="llm_server", params=["openai", "ollama"])
def fixture_llm_server(request: pytest.FixtureRequest) -> Iterator[ScriptedLLMServer]:
    """Both flavours: a test using it runs once against each."""
    with ScriptedLLMServer(request.param) as server:
        yield server
