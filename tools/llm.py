"""The LLM gateway: one small interface over Ollama and OpenAI-compatible servers.

`LLMGateway.complete_json(messages, schema)` returns the model's raw text, constrained by the
provider's structured-output feature; `complete_text(messages)` returns free text (thread Q&A);
`complete_with_tools(messages, tools, schema=...)` offers tools and returns a `ToolTurn` (the
text, or the calls the model made).
Validating the JSON is the caller's job (see `firebreak.agents.reasoning`): the raw text is what
a self-healing loop needs to show the model its own mistake.

Why these choices:
- OpenAI-compatible servers (OpenAI, Azure OpenAI's v1 endpoint, vLLM, Ollama's /v1) go through
  langchain-openai's `ChatOpenAI` bound with `response_format={"type": "json_schema", ...,
  "strict": True}`. `base_url` is used as given and must include the `/v1` suffix. The SDK's
  own retries are off (`max_retries=0`): retries happen here, where the breaker counts them.
  Each gateway owns its HTTP client (langchain-openai otherwise shares a process-wide cached
  client, which outlives event loops).
- Ollama goes through the official `ollama.AsyncClient` with `stream=False` and
  `format=<schema>`: ChatOllama streams by default and we want one request, one answer.
- Tool calling uses the same two clients' raw chat APIs, not LangChain's `bind_tools`: with
  tools AND a `response_format` (so that an answer without a call is the strict JSON the
  caller wants), langchain-openai routes the request through the SDK's `parse()`, which
  refuses any tool that is not `strict` (ours have optional arguments); and the raw answers
  hand over a call's arguments exactly as the model sent them (OpenAI: a JSON string, maybe
  broken; Ollama: a dict), which the caller's guards want to judge themselves. Ollama gets
  no `format` beside tools: its format grammar suppresses tool calls (ollama#8095, #11037).
  Messages are plain dicts in one neutral shape (see `complete_with_tools`).
- Every HTTP attempt runs through the dependency's circuit breaker (`llm:<provider>`,
  tools/breaker.py: pybreaker's state machine plus failure rate, slow calls and half-open
  trial permits), built here from `llm.circuit_breaker` or passed in by the composition root.
  An open breaker fails fast with `LLMUnavailable` (kind `circuit_open`) without touching the
  network. Errors are classified once for the LLM and the sources (tools/errors.py): refused
  requests (`bad_request`) and outside cancellation do not count against the LLM.
- `timeout_s` is a deadline for one `complete_*` call *including* its transient retries; each
  HTTP attempt gets what is left of it (the client's own timeout and an `asyncio.timeout`).
  So a hung server costs at most `timeout_s` per call, never `(1 + retries) * timeout_s`.
- Retryable errors (`transient`: connection errors, 5xx, 408; `timeout`; `rate_limited`) are
  retried up to `transient_retries` times with exponential backoff and full jitter (honouring
  `Retry-After` up to `backoff_max_s`), each attempt counted by the breaker; one that lasted
  through a retry is `prolonged`. Other errors are not retried. An answer slower than
  `circuit_breaker.slow_call_s` is used, and counted by the breaker as a failure.
- Calls are counted in `firebreak_llm_calls_total{provider,outcome}` (the finer cause: ok,
  timeout, unreachable, server_error, rate_limited, rejected, unexpected, circuit_open,
  offline) and timed in `firebreak_llm_call_seconds{provider}`; the breaker exports its own
  `firebreak_circuit_breaker_*` series. The registry is injectable; the collectors are shared
  when several gateways (or other breakers) use the same registry.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, TypeVar

import httpx
import ollama
import openai
import structlog
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import SecretStr

from firebreak.tools.breaker import Breaker, BreakerConfig, BreakerMetrics, shared_collector
from firebreak.tools.config import LLMConfig
from firebreak.tools.errors import Category, CircuitOpenError, Failure, classify

__all__ = [
    "JSON_SCHEMA_NAME",
    "LLMCallError",
    "LLMError",
    "LLMGateway",
    "LLMUnavailable",
    "Provider",
    "ToolRequest",
    "ToolTurn",
]

log = structlog.get_logger(__name__)

Provider = Literal["ollama", "openai", "offline"]
Message = Mapping[str, str]
T = TypeVar("T")

JSON_SCHEMA_NAME = "root_cause_analysis"
_ROLES = {
    "system": SystemMessage,
    "user": HumanMessage,
    "human": HumanMessage,
    "assistant": AIMessage,
    "ai": AIMessage,
}


# --------------------------------------------------------------------------------------------
# Errors


class LLMError(Exception):
    """The LLM produced no answer. `kind` says why: an error category of tools/errors.py
    (`transient`, `prolonged`, `timeout`, `rate_limited`, `bad_request`, `circuit_open`) or
    `offline`."""

    def __init__(self, message: str, *, kind: str = "error", tries: int = 0) -> None:
        super().__init__(message)
        self.kind = kind
        self.tries = tries


class LLMUnavailable(LLMError):
    """No LLM can answer now: none configured (`offline`), the circuit breaker is open, or it
    stayed unreachable / slow / failing through the transient retries."""


class LLMCallError(LLMError):
    """The LLM server refused the request (a 4xx other than 408/429: `bad_request`) or
    answered in a way we cannot use (`prolonged`): retrying the same request will not help."""


# --------------------------------------------------------------------------------------------
# Tool calls


@dataclass(frozen=True)
class ToolRequest:
    """One call the model asked for. `arguments` as it sent them: OpenAI a JSON string (maybe
    not valid JSON), Ollama a dict. Ollama sends no ids: one is made up here."""

    id: str
    name: str
    arguments: dict[str, Any] | str


@dataclass(frozen=True)
class ToolTurn:
    """The model's answer to a request that offered tools: its text, and the calls it made
    (none: `content` is its answer)."""

    content: str
    calls: tuple[ToolRequest, ...] = ()


def _call_arguments(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _openai_message(message: Mapping[str, Any]) -> dict[str, Any]:
    role = message.get("role", "user")
    if role == "tool":
        return {
            "role": "tool",
            "tool_call_id": message["tool_call_id"],
            "content": message["content"],
        }
    if role == "assistant" and message.get("tool_calls"):
        calls = [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": _call_arguments(call["arguments"])},
            }
            for call in message["tool_calls"]
        ]
        return {"role": "assistant", "content": message.get("content") or None, "tool_calls": calls}
    return {"role": role, "content": message["content"]}


def _as_mapping(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return {}
    return dict(arguments) if isinstance(arguments, Mapping) else {}


def _ollama_message(message: Mapping[str, Any]) -> dict[str, Any]:
    role = message.get("role", "user")
    if role == "tool":
        return {"role": "tool", "content": message["content"], "tool_name": message.get("name")}
    if role == "assistant" and message.get("tool_calls"):
        calls = [
            {"function": {"name": call["name"], "arguments": _as_mapping(call["arguments"])}}
            for call in message["tool_calls"]
        ]
        return {"role": "assistant", "content": message.get("content") or "", "tool_calls": calls}
    return {"role": role, "content": message["content"]}


# --------------------------------------------------------------------------------------------
# Error details


async def _within(seconds: float, call: Callable[[], Awaitable[T]]) -> T:
    async with asyncio.timeout(seconds):
        return await call()


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        return max(0.0, float(headers.get("retry-after", "")))
    except ValueError:
        return None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


# --------------------------------------------------------------------------------------------
# The gateway


class LLMGateway:
    """Ollama / OpenAI-compatible chat, behind a circuit breaker, with bounded retries."""

    def __init__(
        self,
        *,
        provider: Provider,
        model: str,
        base_url: str,
        api_key: str | SecretStr | None = None,
        timeout_s: float = 60.0,
        transient_retries: int = 2,
        temperature: float = 0.0,
        fail_max: int | None = None,
        reset_timeout_s: float | None = None,
        registry: CollectorRegistry | None = None,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 8.0,
        breaker_config: BreakerConfig | None = None,
        breaker: Breaker | None = None,
    ) -> None:
        """`breaker`: the dependency's breaker from the composition root's `BreakerBoard`;
        without one the gateway builds its own from `breaker_config` (`fail_max` and
        `reset_timeout_s` override it), its metrics on `registry` (a private one if None)."""
        if provider not in ("ollama", "openai", "offline"):
            raise ValueError(f"unknown LLM provider {provider!r}")
        self.provider: Provider = provider
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.transient_retries = transient_retries
        self.temperature = temperature
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.dependency = f"llm:{provider}"

        registry = CollectorRegistry() if registry is None else registry
        self._calls = shared_collector(
            registry,
            "firebreak_llm_calls",
            lambda: Counter(
                "firebreak_llm_calls",
                "LLM HTTP calls by provider and outcome (ok, timeout, unreachable, "
                "server_error, rate_limited, rejected, unexpected, circuit_open, offline)",
                ["provider", "outcome"],
                registry=registry,
            ),
        )
        self._latency = shared_collector(
            registry,
            "firebreak_llm_call_seconds",
            lambda: Histogram(
                "firebreak_llm_call_seconds",
                "LLM HTTP call latency",
                ["provider"],
                buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 120),
                registry=registry,
            ),
        )
        if breaker is None:
            overrides = {"fail_max": fail_max, "reset_timeout_s": reset_timeout_s}
            config = (breaker_config or BreakerConfig()).model_copy(
                update={k: v for k, v in overrides.items() if v is not None}
            )
            breaker = Breaker(self.dependency, config, metrics=BreakerMetrics(registry))
        self.breaker = breaker

        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self._chat: ChatOpenAI | None = None
        self._openai_http: httpx.AsyncClient | None = None
        self._ollama: ollama.AsyncClient | None = None
        if provider == "openai":
            self._openai_http = openai.DefaultAsyncHttpxClient(timeout=timeout_s)
            self._chat = ChatOpenAI(
                model=model,
                base_url=self.base_url,
                # vLLM and other self-hosted servers need no key, but the SDK insists on one.
                api_key=SecretStr(key or "not-needed"),
                timeout=timeout_s,
                max_retries=0,
                temperature=temperature,
                use_responses_api=False,
                http_async_client=self._openai_http,
            )
        elif provider == "ollama":
            self._ollama = ollama.AsyncClient(host=self.base_url, timeout=timeout_s)

    @classmethod
    def from_config(
        cls,
        cfg: LLMConfig,
        api_key: str | SecretStr | None = None,
        *,
        registry: CollectorRegistry | None = None,
        **overrides: Any,
    ) -> LLMGateway:
        """The gateway the configuration describes (`api_key` is `OPENAI_API_KEY`, used only
        by the openai provider). `overrides` reach the constructor (e.g. `backoff_base_s`, or
        `breaker=` the board's `llm:<provider>` breaker)."""
        params: dict[str, Any] = {
            "provider": cfg.provider,
            "model": cfg.model,
            "base_url": cfg.base_url,
            "api_key": api_key,
            "timeout_s": cfg.timeout_s,
            "transient_retries": cfg.transient_retries,
            "temperature": cfg.temperature,
            "breaker_config": cfg.circuit_breaker,
            "registry": registry,
        }
        params.update(overrides)
        return cls(**params)

    # -- public API --------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """False for the `offline` provider: every call raises `LLMUnavailable`."""
        return self.provider != "offline"

    @property
    def breaker_state(self) -> str:
        """`closed`, `open` or `half-open`."""
        return self.breaker.state

    def describe(self) -> str:
        return "offline" if not self.enabled else f"{self.provider} {self.model} at {self.base_url}"

    async def complete_json(
        self,
        messages: Sequence[Message],
        schema: dict[str, Any],
        *,
        schema_name: str = JSON_SCHEMA_NAME,
    ) -> str:
        """The model's raw answer, constrained to `schema` (OpenAI strict `json_schema`,
        Ollama `format`). Raises `LLMUnavailable` or `LLMCallError`; never validates."""
        self._require_enabled()
        if self.provider == "openai":
            response_format = {
                "type": "json_schema",
                "json_schema": {"name": schema_name, "strict": True, "schema": schema},
            }
            return await self._with_resilience(
                lambda: self._openai(messages, response_format=response_format)
            )
        return await self._with_resilience(lambda: self._ollama_chat(messages, fmt=schema))

    async def complete_text(self, messages: Sequence[Message]) -> str:
        """The model's free-text answer."""
        self._require_enabled()
        if self.provider == "openai":
            return await self._with_resilience(lambda: self._openai(messages))
        return await self._with_resilience(lambda: self._ollama_chat(messages, fmt=None))

    async def complete_with_tools(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        *,
        schema: dict[str, Any] | None = None,
        schema_name: str = JSON_SCHEMA_NAME,
    ) -> ToolTurn:
        """One chat request offering `tools` (OpenAI function specs), through the breaker and
        the retries like every call. `messages` are dicts: `{"role", "content"}`, an
        assistant's calls `{"role": "assistant", "content", "tool_calls": [{"id", "name",
        "arguments"}]}`, a result `{"role": "tool", "tool_call_id", "name", "content"}`.
        `schema` constrains an answer without a call where the provider allows it beside
        tools (OpenAI strict `json_schema`); Ollama gets none (see the module doc). A server
        or model that takes no tools answers 400: `LLMCallError` (kind `bad_request`)."""
        self._require_enabled()
        if self.provider == "openai":
            response_format = None
            if schema is not None:
                response_format = {
                    "type": "json_schema",
                    "json_schema": {"name": schema_name, "strict": True, "schema": schema},
                }
            return await self._with_resilience(
                lambda: self._openai_tools(messages, tools, response_format)
            )
        return await self._with_resilience(lambda: self._ollama_tools(messages, tools))

    async def check(self) -> str:
        """Reach the server once (model list), for `firebreak check`. Not through the
        breaker: it is a diagnosis. Returns a one-line description; raises `LLMError`."""
        self._require_enabled()
        try:
            async with asyncio.timeout(self.timeout_s):
                if self.provider == "openai":
                    assert self._chat is not None
                    page = await self._chat.root_async_client.models.list()
                    names = [m.id for m in page.data]
                else:
                    assert self._ollama is not None
                    listing = await self._ollama.list()
                    names = [m.model or "" for m in listing.models]
        except Exception as exc:
            kind = classify(exc).category
            raise LLMUnavailable(f"{self.describe()}: {_describe(exc)}", kind=kind) from exc
        note = "" if self.model in names else f" (model {self.model} not listed)"
        return f"{self.describe()}: reachable, {len(names)} models{note}"

    async def aclose(self) -> None:
        if self._openai_http is not None:
            await self._openai_http.aclose()
        if self._ollama is not None:
            await self._ollama.close()

    async def __aenter__(self) -> LLMGateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- resilience --------------------------------------------------------------------------

    def _require_enabled(self) -> None:
        if not self.enabled:
            self._calls.labels(provider=self.provider, outcome="offline").inc()
            raise LLMUnavailable(
                "no LLM configured (llm.provider is offline)", kind="offline", tries=0
            )

    def _backoff(self, tries: int, exc: BaseException) -> float:
        hint = _retry_after(exc)
        if hint is not None:
            return min(hint, self.backoff_max_s)
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (tries - 1))
        return random.uniform(0, ceiling)  # full jitter

    async def _with_resilience(self, call: Callable[[], Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        tries = 0
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise LLMUnavailable(
                    f"{self.describe()}: no answer within {self.timeout_s:g}s ({tries} tries)",
                    kind=Category.TIMEOUT,
                    tries=tries,
                )
            started = time.perf_counter()
            try:
                result = await self.breaker.call(partial(_within, remaining, call))
            except CircuitOpenError as exc:  # refused: nothing was sent
                self._calls.labels(provider=self.provider, outcome="circuit_open").inc()
                raise LLMUnavailable(
                    f"{self.dependency} circuit breaker is open: not calling the LLM ({exc})",
                    kind=Category.CIRCUIT_OPEN,
                    tries=tries,
                ) from exc
            except Exception as exc:
                tries += 1
                failure = classify(exc)
                self._observe(failure.cause, started)
                delay = self._next_try(exc, failure, tries, deadline - loop.time())
                log.info(
                    "llm_retry",
                    provider=self.provider,
                    kind=failure.category,
                    cause=failure.cause,
                    tries=tries,
                    delay_s=round(delay, 3),
                )
                await asyncio.sleep(delay)
                continue
            self._observe("ok", started)
            return result

    def _next_try(self, exc: Exception, failure: Failure, tries: int, left_s: float) -> float:
        """The pause before the next try, or raise: not retryable, retries used up, no time
        left, or this failure (or one beside it) opened the breaker."""
        message = f"{self.describe()}: {failure.cause}: {_describe(exc)}"
        if self.breaker.state == "open":
            raise LLMUnavailable(
                f"{message}; the {self.dependency} circuit breaker opened",
                kind=Category.CIRCUIT_OPEN,
                tries=tries,
            ) from exc
        if not failure.category.retryable:
            raise LLMCallError(message, kind=failure.category, tries=tries) from exc
        kind = Category.PROLONGED if tries > 1 else failure.category
        if tries > self.transient_retries:
            raise LLMUnavailable(
                f"{message} (gave up after {tries} tries)", kind=kind, tries=tries
            ) from exc
        delay = self._backoff(tries, exc)
        if delay >= left_s:
            raise LLMUnavailable(
                f"{message} (no time left within {self.timeout_s:g}s for a retry)",
                kind=kind,
                tries=tries,
            ) from exc
        return delay

    def _observe(self, outcome: str, started: float) -> None:
        self._calls.labels(provider=self.provider, outcome=outcome).inc()
        self._latency.labels(provider=self.provider).observe(time.perf_counter() - started)

    # -- providers ---------------------------------------------------------------------------

    @staticmethod
    def _lc_messages(messages: Sequence[Message]) -> list[BaseMessage]:
        out: list[BaseMessage] = []
        for message in messages:
            role = message.get("role", "user")
            if role not in _ROLES:
                raise ValueError(f"unknown message role {role!r}")
            out.append(_ROLES[role](content=message["content"]))
        return out

    async def _openai(
        self, messages: Sequence[Message], response_format: dict[str, Any] | None = None
    ) -> str:
        assert self._chat is not None
        kwargs: dict[str, Any] = {}
        if response_format is not None:
            kwargs["response_format"] = response_format
        try:
            reply = await self._chat.ainvoke(self._lc_messages(messages), **kwargs)
        except openai.LengthFinishReasonError as exc:
            # The answer was cut at the token limit: hand back the truncated text so the
            # caller's validation fails and its repair loop can ask for a shorter answer.
            choice = exc.completion.choices[0] if exc.completion.choices else None
            return (choice.message.content or "") if choice else ""
        content = reply.content
        if isinstance(content, str) and content:
            return content
        refusal = reply.additional_kwargs.get("refusal")
        if refusal:
            return str(refusal)
        return reply.text if not isinstance(content, str) else content

    async def _ollama_chat(self, messages: Sequence[Message], fmt: dict[str, Any] | None) -> str:
        assert self._ollama is not None
        response = await self._ollama.chat(
            model=self.model,
            messages=[{"role": m.get("role", "user"), "content": m["content"]} for m in messages],
            stream=False,
            format=fmt,
            options={"temperature": self.temperature},
        )
        return response.message.content or ""

    async def _openai_tools(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        response_format: dict[str, Any] | None,
    ) -> ToolTurn:
        assert self._chat is not None
        extra: dict[str, Any] = {}
        if response_format is not None:
            extra["response_format"] = response_format
        completion = await self._chat.root_async_client.chat.completions.create(
            model=self.model,
            messages=[_openai_message(m) for m in messages],  # type: ignore[misc]
            tools=list(tools),  # type: ignore[arg-type]
            temperature=self.temperature,
            **extra,
        )
        if not completion.choices:
            return ToolTurn(content="")
        message = completion.choices[0].message
        calls = tuple(
            ToolRequest(call.id, call.function.name, call.function.arguments or "")
            for call in message.tool_calls or []
            if getattr(call, "function", None) is not None
        )
        return ToolTurn(content=message.content or message.refusal or "", calls=calls)

    async def _ollama_tools(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]
    ) -> ToolTurn:
        assert self._ollama is not None
        response = await self._ollama.chat(
            model=self.model,
            messages=[_ollama_message(m) for m in messages],
            tools=list(tools),  # type: ignore[arg-type]
            stream=False,
            options={"temperature": self.temperature},
        )
        calls = tuple(
            ToolRequest(
                "call_" + uuid.uuid4().hex[:24],
                call.function.name,
                dict(call.function.arguments or {}),
            )
            for call in response.message.tool_calls or []
        )
        return ToolTurn(content=response.message.content or "", calls=calls)
