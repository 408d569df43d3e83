"""The LLM gateway: one small interface over Ollama and OpenAI-compatible servers.

`LLMGateway.complete_json(messages, schema)` returns the model's answer constrained by the
provider's structured-output feature; `complete_text(messages)` returns free text (thread Q&A);
`complete_with_tools(messages, tools)` offers tools. Each returns a `Completion`: the text, the
calls the model made, why it stopped and the tokens it read and wrote. The one self-healing
structured-output loop over `complete_json`, which the RCA, the postmortem and anything after
them use, is `tools.llm_json.ask_json`.

Every answer is bounded: `llm.max_tokens` goes with every request (`max_completion_tokens`,
Ollama's `num_predict`), so a looping model stops and says so (`finish_reason: length`).
`context_tokens()` is the model's context window (`llm.context_tokens`, else read from the
server: llama.cpp `/props`, vLLM `/v1/models`, Ollama `/api/show`); `count_tokens(text)` counts
with the server's own tokenizer where it has one (`/tokenize`: llama.cpp, vLLM), else by a
measured estimate (`estimate_tokens`).

Why these choices:
- OpenAI-compatible servers (OpenAI, Azure OpenAI's v1 endpoint, vLLM, Ollama's /v1) go through
  langchain-openai's `ChatOpenAI` bound with `response_format={"type": "json_schema", ...,
  "strict": True}`. `base_url` is used as given and must include the `/v1` suffix. The SDK's
  own retries are off (`max_retries=0`): retries happen here, where the breaker counts them.
  Each gateway owns its HTTP client (langchain-openai otherwise shares a process-wide cached
  client, which outlives event loops).
- Ollama goes through the official `ollama.AsyncClient` with `stream=False` and
  `format=<schema>`: ChatOllama streams by default and we want one request, one answer.
- Tool calling uses the same two clients' raw chat APIs, not LangChain's `bind_tools`: the
  raw answers hand over a call's arguments exactly as the model sent them (OpenAI: a JSON
  string, maybe broken; Ollama: a dict), which the caller's guards want to judge themselves.
  No format goes beside tools: llama.cpp and vLLM force a constrained answer into the schema,
  so a call becomes impossible, and Ollama's format grammar suppresses calls too (ollama#8095,
  #11037). Small models often write their call as text in `content` (Qwen's `<tool_call>`
  form, a fenced or bare `{"name", "arguments"}`): such a call naming an offered tool is taken
  as a call (tools/llm_output.py). Messages are plain dicts in one neutral shape (see
  `complete_with_tools`).
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
  `circuit_breaker.slow_call_s` is used, and counted by the breaker as a failure only when it
  is also slow for this model (`Pace`): a model on a CPU answers in a minute every time, and
  must not open its circuit by being itself; one that suddenly takes three times its own
  pace per token does.
- Calls are counted in `firebreak_llm_calls_total{provider,outcome}` (the finer cause: ok,
  timeout, unreachable, server_error, rate_limited, rejected, unexpected, circuit_open,
  offline) and timed in `firebreak_llm_call_seconds{provider}`; the breaker exports its own
  `firebreak_circuit_breaker_*` series. The registry is injectable; the collectors are shared
  when several gateways (or other breakers) use the same registry.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import statistics
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Literal, TypeVar

import httpx
import httpx2
import ollama
import openai
import structlog
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from firebreak.tools.breaker import Breaker, BreakerConfig
from firebreak.tools.config import LLMConfig
from firebreak.tools.errors import Category, CircuitOpenError, Failure, classify
from firebreak.tools.llm_output import text_tool_calls
from firebreak.tools.metrics import metrics_on

__all__ = [
    "JSON_SCHEMA_NAME",
    "Completion",
    "LLMCallError",
    "LLMError",
    "LLMGateway",
    "LLMUnavailable",
    "Pace",
    "Provider",
    "ToolRequest",
    "estimate_tokens",
]

log = structlog.get_logger(__name__)

Provider = Literal["ollama", "openai", "offline"]
Message = Mapping[str, str]
T = TypeVar("T")

JSON_SCHEMA_NAME = "root_cause_analysis"
DEFAULT_MAX_TOKENS = 1024
DEFAULT_CONTEXT_TOKENS = 8192  # when neither the config nor the server says
OLLAMA_CONTEXT_CAP = 8192  # Ollama's window when unset: the model's own, at most this
DISCOVERY_TIMEOUT_S = 5.0
TOKENIZE_TIMEOUT_S = 10.0
# `/tokenize` goes through the OpenAI SDK's client, which is httpx2's (openai 3), not httpx's:
# its failures are httpx2's classes (and a body that is no count, ValueError).
TOKENIZE_ERRORS = (httpx.HTTPError, httpx2.HTTPError, ValueError)
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
# Answers


@dataclass(frozen=True)
class ToolRequest:
    """One call the model asked for. `arguments` as it sent them: OpenAI a JSON string (maybe
    not valid JSON), Ollama (or a call written as text) a dict. Ollama and text send no ids:
    one is made up here."""

    id: str
    name: str
    arguments: dict[str, Any] | str


@dataclass(frozen=True)
class Completion:
    """One answer: its text, the tool calls it made (none: `text` is the answer), why the
    model stopped (`stop`, `length` at the token bound, `tool_calls`) and the tokens it read
    and wrote, as the server counted them (None when it did not say)."""

    text: str
    calls: tuple[ToolRequest, ...] = ()
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    elapsed_s: float = 0.0  # the request that answered (not the retries before it)

    @property
    def cut(self) -> bool:
        """Stopped at `max_tokens`: the text is incomplete."""
        return self.finish_reason == "length"


# Qwen's tokenizer against this pattern over Firebreak's own prompts (system text, evidence,
# tool specs): 0.86-0.98 tokens per match; digits are single tokens, as in most BPE vocabularies.
_TOKENISH = re.compile(r"[A-Za-z]+|\d|[^\sA-Za-z\d]")
TOKENS_PER_MATCH = 0.95


def estimate_tokens(text: str) -> int:
    """Tokens `text` takes, estimated: words, digits and symbols (see `_TOKENISH`)."""
    return math.ceil(len(_TOKENISH.findall(text)) * TOKENS_PER_MATCH)


class Pace:
    """How fast this model answers, learnt from its own answers: seconds per token (read and
    written) over the last `window` answers. An answer is slow for the model when it took
    `factor` times the median; before `warmup` answers nothing is (there is no normal yet)."""

    def __init__(self, *, window: int = 20, factor: float = 3.0, warmup: int = 3) -> None:
        self._samples: deque[float] = deque(maxlen=window)
        self._factor = factor
        self._warmup = warmup

    def slow(self, answer: Completion, seconds: float) -> bool:
        """Whether this answer was slow for the model (judged before it is `observe`d)."""
        if len(self._samples) < self._warmup:
            return False
        return _per_token(answer, seconds) > self._factor * statistics.median(self._samples)

    def observe(self, answer: Completion, seconds: float) -> None:
        self._samples.append(_per_token(answer, seconds))


def _per_token(answer: Completion, seconds: float) -> float:
    tokens = (answer.prompt_tokens or 0) + (answer.completion_tokens or 0)
    return seconds / max(1, tokens)


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
        max_tokens: int = DEFAULT_MAX_TOKENS,
        context_tokens: int | None = None,
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
        `reset_timeout_s` override it), its metrics on `registry` (a private one if None).
        `context_tokens`: the model's context window, when the server should not be asked."""
        if provider not in ("ollama", "openai", "offline"):
            raise ValueError(f"unknown LLM provider {provider!r}")
        self.provider: Provider = provider
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.transient_retries = transient_retries
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.dependency = f"llm:{provider}"
        self.pace = Pace()
        self._context_tokens = context_tokens
        self._server: str | None = None
        self._tokenize: Callable[[str], dict[str, Any]] | None = None
        self._tokenize_known = provider != "openai"  # only OpenAI-compatible servers have one

        registry = CollectorRegistry() if registry is None else registry
        collectors = metrics_on(registry)
        self._calls = collectors.llm.calls
        self._latency = collectors.llm.latency
        if breaker is None:
            overrides = {"fail_max": fail_max, "reset_timeout_s": reset_timeout_s}
            config = (breaker_config or BreakerConfig()).model_copy(
                update={k: v for k, v in overrides.items() if v is not None}
            )
            breaker = Breaker(self.dependency, config, metrics=collectors.breakers)
        self.breaker = breaker

        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self._chat: ChatOpenAI | None = None
        self._http: openai.DefaultAsyncHttpxClient | None = None
        self._ollama: ollama.AsyncClient | None = None
        if provider == "openai":
            self._http = openai.DefaultAsyncHttpxClient(timeout=timeout_s)
            self._chat = ChatOpenAI(
                model=model,
                base_url=self.base_url,
                # vLLM and other self-hosted servers need no key, but the SDK insists on one.
                api_key=SecretStr(key or "not-needed"),
                timeout=timeout_s,
                max_retries=0,
                temperature=temperature,
                max_tokens=max_tokens,  # sent as max_completion_tokens
                use_responses_api=False,
                http_async_client=self._http,
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
            "max_tokens": cfg.max_tokens,
            "context_tokens": cfg.context_tokens,
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

    @property
    def root_url(self) -> str:
        """The server's root: `base_url` without the OpenAI `/v1` suffix (where llama.cpp
        and vLLM serve `/tokenize` and `/props`)."""
        return self.base_url.removesuffix("/v1")

    def describe(self) -> str:
        return "offline" if not self.enabled else f"{self.provider} {self.model} at {self.base_url}"

    async def complete_json(
        self,
        messages: Sequence[Mapping[str, Any]],
        schema: dict[str, Any],
        *,
        schema_name: str = JSON_SCHEMA_NAME,
        tools: Sequence[Mapping[str, Any]] = (),
    ) -> Completion:
        """The model's answer, constrained to `schema` (OpenAI strict `json_schema`, Ollama
        `format`). Raises `LLMUnavailable` or `LLMCallError`; never validates.

        `tools`: the specs a conversation with tool calls was held with, sent again with
        `tool_choice: none`, so the request differs from the last only by its end and the
        server reuses what it computed for the conversation (llama.cpp renders the tools
        into the system prompt: without them the whole prompt is read again)."""
        self._require_enabled()
        if self.provider == "openai":
            response_format = {
                "type": "json_schema",
                "json_schema": {"name": schema_name, "strict": True, "schema": schema},
            }
            if tools:
                return await self._with_resilience(
                    lambda: self._openai_tools(messages, tools, response_format=response_format)
                )
            return await self._with_resilience(
                lambda: self._openai(messages, response_format=response_format)
            )
        if tools:  # Ollama: a format beside tools rules out calls, as tool_choice none does
            return await self._with_resilience(
                lambda: self._ollama_tools(messages, tools, fmt=schema)
            )
        return await self._with_resilience(lambda: self._ollama_chat(messages, fmt=schema))

    async def complete_text(self, messages: Sequence[Message]) -> Completion:
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
        max_tokens: int | None = None,
    ) -> Completion:
        """One chat request offering `tools` (OpenAI function specs), through the breaker and
        the retries like every call. `messages` are dicts: `{"role", "content"}`, an
        assistant's calls `{"role": "assistant", "content", "tool_calls": [{"id", "name",
        "arguments"}]}`, a result `{"role": "tool", "tool_call_id", "name", "content"}`.
        A call the model wrote as text naming an offered tool is returned as a call (its text
        then empty). `max_tokens` lowers the answer's bound for this request. A server or
        model that takes no tools answers 400: `LLMCallError` (kind `bad_request`)."""
        self._require_enabled()
        bound = min(max_tokens or self.max_tokens, self.max_tokens)
        if self.provider == "openai":
            answer = await self._with_resilience(
                lambda: self._openai_tools(messages, tools, max_tokens=bound)
            )
        else:
            answer = await self._with_resilience(
                lambda: self._ollama_tools(messages, tools, max_tokens=bound)
            )
        if answer.calls:
            return answer
        offered = [str(spec["function"]["name"]) for spec in tools]
        written = text_tool_calls(answer.text, offered)
        if not written:
            return answer
        calls = tuple(ToolRequest(call.id, call.name, call.arguments) for call in written)
        return replace(answer, text="", calls=calls, finish_reason="tool_calls")

    async def server_kind(self) -> str:
        """What serves the model: `llama.cpp`, `vllm`, `ollama` or `openai-compatible` (any
        other, OpenAI itself included), found out once. Servers that compile a JSON schema into
        a grammar (llama.cpp, vLLM, Ollama) also enforce its length limits."""
        if self._server is None:
            self._server = await self._discover() if self.enabled else "offline"
        return self._server

    async def enforces_lengths(self) -> bool:
        """Whether `maxLength` and `maxItems` in a schema bound the answer (they do where the
        schema becomes a grammar; OpenAI's strict mode refuses them)."""
        return await self.server_kind() in ("llama.cpp", "vllm", "ollama")

    async def context_tokens(self) -> int:
        """The model's context window in tokens: `llm.context_tokens`, else what the server
        says (read once), else `DEFAULT_CONTEXT_TOKENS`."""
        if self._context_tokens is None:
            found = await self._read_context() if self.enabled else None
            self._context_tokens = found or DEFAULT_CONTEXT_TOKENS
        return self._context_tokens

    async def count_tokens(self, text: str) -> int:
        """Tokens `text` takes for this model: the server's tokenizer where it has one, else
        `estimate_tokens`. Never raises."""
        if not self._tokenize_known:
            self._tokenize = await self._find_tokenizer()
            self._tokenize_known = True
        if self._tokenize is None or self._http is None:
            return estimate_tokens(text)
        try:
            response = await self._http.post(
                f"{self.root_url}/tokenize", json=self._tokenize(text), timeout=TOKENIZE_TIMEOUT_S
            )
            response.raise_for_status()
            return _token_count(response.json())
        except TOKENIZE_ERRORS as exc:
            log.debug("tokenize_failed", error=_describe(exc))
            return estimate_tokens(text)

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
        if self._http is not None:
            await self._http.aclose()
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

    async def _with_resilience(self, call: Callable[[], Awaitable[Completion]]) -> Completion:
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
                result = await self.breaker.call(
                    partial(_within, remaining, call), slow=self.pace.slow
                )
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
            elapsed = time.perf_counter() - started
            self.pace.observe(result, elapsed)
            return replace(result, elapsed_s=elapsed)

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

    # -- what the server says about the model -------------------------------------------------

    async def _discover(self) -> str:
        """The server's kind, and its context window on the way (see `context_tokens`)."""
        try:
            async with asyncio.timeout(DISCOVERY_TIMEOUT_S):
                if self.provider == "ollama":
                    found = await self._ollama_context()
                    kind = "ollama"
                else:
                    kind, found = await self._openai_server()
        except Exception as exc:  # a diagnosis: any failure means "not said"
            log.info("llm_server_unknown", model=self.model, error=_describe(exc))
            return "openai-compatible" if self.provider == "openai" else self.provider
        if self._context_tokens is None and found:
            self._context_tokens = found
        log.info("llm_server", model=self.model, kind=kind, context_tokens=found)
        return kind

    async def _read_context(self) -> int | None:
        """The context window the server runs the model with, or None if it does not say."""
        await self.server_kind()
        return self._context_tokens

    async def _openai_server(self) -> tuple[str, int | None]:
        """llama.cpp answers `/props` with its `n_ctx`; vLLM lists `max_model_len`."""
        assert self._http is not None
        props = await self._http.get(f"{self.root_url}/props")
        if props.status_code == 200:
            settings = props.json().get("default_generation_settings") or {}
            n_ctx = settings.get("n_ctx")
            if isinstance(n_ctx, int) and n_ctx > 0:
                return "llama.cpp", n_ctx
        listing = await self._http.get(f"{self.base_url}/models")
        if listing.status_code != 200:
            return "openai-compatible", None
        for entry in listing.json().get("data") or []:
            if entry.get("id") == self.model and isinstance(entry.get("max_model_len"), int):
                return "vllm", int(entry["max_model_len"])
        return "openai-compatible", None

    async def _ollama_context(self) -> int | None:
        """The model's trained context, at most `OLLAMA_CONTEXT_CAP`: every request then
        asks for exactly this window (`num_ctx`), so Ollama's smaller default never cuts the
        prompt silently."""
        assert self._ollama is not None
        shown = await self._ollama.show(self.model)
        info = shown.modelinfo or {}
        trained = [v for k, v in info.items() if k.endswith(".context_length") and v]
        return min(int(trained[0]), OLLAMA_CONTEXT_CAP) if trained else None

    async def _find_tokenizer(self) -> Callable[[str], dict[str, Any]] | None:
        """The `/tokenize` request shape this server takes: llama.cpp's or vLLM's."""
        assert self._http is not None
        shapes: list[Callable[[str], dict[str, Any]]] = [
            lambda text: {"content": text},
            lambda text: {"model": self.model, "prompt": text},
        ]
        for shape in shapes:
            try:
                response = await self._http.post(
                    f"{self.root_url}/tokenize", json=shape("ready"), timeout=TOKENIZE_TIMEOUT_S
                )
                if response.status_code == 200:
                    _token_count(response.json())
                    return shape
            except TOKENIZE_ERRORS:
                return None
        return None

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

    def _ollama_options(self, max_tokens: int | None = None) -> dict[str, Any]:
        options: dict[str, Any] = {
            "temperature": self.temperature,
            "num_predict": max_tokens or self.max_tokens,
        }
        if self._context_tokens is not None:
            options["num_ctx"] = self._context_tokens
        return options

    async def _openai(
        self, messages: Sequence[Message], response_format: dict[str, Any] | None = None
    ) -> Completion:
        assert self._chat is not None
        kwargs: dict[str, Any] = {}
        if response_format is not None:
            kwargs["response_format"] = response_format
        try:
            reply = await self._chat.ainvoke(self._lc_messages(messages), **kwargs)
        except openai.LengthFinishReasonError as exc:
            # Cut at the token limit: the truncated text goes back to the caller, whose
            # validation fails and whose repair loop asks for a shorter answer.
            choice = exc.completion.choices[0] if exc.completion.choices else None
            cut = exc.completion.usage
            return Completion(
                text=(choice.message.content or "") if choice else "",
                finish_reason="length",
                prompt_tokens=cut.prompt_tokens if cut else None,
                completion_tokens=cut.completion_tokens if cut else None,
            )
        content = reply.content
        text = content if isinstance(content, str) else reply.text
        if not text:
            text = str(reply.additional_kwargs.get("refusal") or "")
        usage = reply.usage_metadata
        return Completion(
            text=text,
            finish_reason=reply.response_metadata.get("finish_reason"),
            prompt_tokens=usage["input_tokens"] if usage else None,
            completion_tokens=usage["output_tokens"] if usage else None,
        )

    async def _ollama_chat(
        self, messages: Sequence[Message], fmt: dict[str, Any] | None
    ) -> Completion:
        assert self._ollama is not None
        response = await self._ollama.chat(
            model=self.model,
            messages=[{"role": m.get("role", "user"), "content": m["content"]} for m in messages],
            stream=False,
            format=fmt,
            options=self._ollama_options(),
        )
        return _ollama_completion(response)

    async def _openai_tools(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        *,
        response_format: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        """Chat with tools offered; with `response_format`, the tools are only context
        (`tool_choice: none`) and the answer is constrained."""
        assert self._chat is not None
        extra: dict[str, Any] = {}
        if response_format is not None:
            extra = {"response_format": response_format, "tool_choice": "none"}
        completion = await self._chat.root_async_client.chat.completions.create(
            model=self.model,
            messages=[_openai_message(m) for m in messages],
            tools=list(tools),
            temperature=self.temperature,
            max_completion_tokens=max_tokens or self.max_tokens,
            **extra,
        )
        usage = completion.usage
        prompt_tokens = usage.prompt_tokens if usage else None
        completion_tokens = usage.completion_tokens if usage else None
        if not completion.choices:
            return Completion(
                text="", prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
            )
        choice = completion.choices[0]
        message = choice.message
        calls = tuple(
            ToolRequest(call.id, call.function.name, call.function.arguments or "")
            for call in message.tool_calls or []
            if getattr(call, "function", None) is not None
        )
        return Completion(
            text=message.content or message.refusal or "",
            calls=calls,
            finish_reason=choice.finish_reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )

    async def _ollama_tools(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        *,
        fmt: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        assert self._ollama is not None
        response = await self._ollama.chat(
            model=self.model,
            messages=[_ollama_message(m) for m in messages],
            tools=list(tools),
            stream=False,
            format=fmt,
            options=self._ollama_options(max_tokens),
        )
        calls = tuple(
            ToolRequest(
                "call_" + uuid.uuid4().hex[:24],
                call.function.name,
                dict(call.function.arguments or {}),
            )
            for call in response.message.tool_calls or []
        )
        answer = _ollama_completion(response)
        return replace(answer, calls=calls, finish_reason="tool_calls") if calls else answer


def _ollama_completion(response: ollama.ChatResponse) -> Completion:
    return Completion(
        text=response.message.content or "",
        finish_reason=response.done_reason,
        prompt_tokens=response.prompt_eval_count,
        completion_tokens=response.eval_count,
    )


def _token_count(answer: Any) -> int:
    """llama.cpp answers `{"tokens": [...]}`, vLLM `{"count": N, "tokens": [...]}`."""
    if isinstance(answer, dict):
        if isinstance(answer.get("count"), int):
            return int(answer["count"])
        if isinstance(answer.get("tokens"), list):
            return len(answer["tokens"])
    raise ValueError("not a /tokenize answer")
