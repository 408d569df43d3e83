"""The LLM gateway: one small interface over Ollama and OpenAI-compatible servers.

`LLMGateway.complete_json(messages, schema)` returns the model's raw text, constrained by the
provider's structured-output feature; `complete_text(messages)` returns free text (thread Q&A).
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
- Every request runs inside a pybreaker `CircuitBreaker` per dependency (`llm:<provider>`),
  as `with breaker.calling(): await ...` (`call_async` needs Tornado and `call(async_fn)` never
  counts failures). An open breaker fails fast with `LLMUnavailable` without touching the
  network. Failures that count: timeouts, connection errors, HTTP 5xx/408/429 and anything
  unexpected. Not counted (they say nothing about the dependency's health): other 4xx answers
  (our request was refused: the server is up) and cancellation from outside.
- `timeout_s` is a deadline for one `complete_*` call *including* its transient retries; each
  HTTP attempt gets what is left of it (the client's own timeout and an `asyncio.timeout`).
  So a hung server costs at most `timeout_s` per call, never `(1 + retries) * timeout_s`.
- Transient errors (timeouts, connection errors, 5xx, 408, 429) are retried up to
  `transient_retries` times with exponential backoff and full jitter (honouring `Retry-After`
  up to `backoff_max_s`), each attempt counted by the breaker; other errors are not retried.
- Breaker state is exported as the gauge `firebreak_circuit_breaker_state{dependency}`
  (0 closed, 1 half-open, 2 open), kept current by a pybreaker listener; pybreaker moves from
  open to half-open lazily, on the first call after `reset_timeout_s`, so the gauge reads 2
  until then. Calls are counted in `firebreak_llm_calls_total{provider,outcome}`. The registry
  is injectable; the collectors are shared when several gateways (or other breakers) use the
  same registry.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

import httpx
import ollama
import openai
import pybreaker
import structlog
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from pydantic import SecretStr

from firebreak.tools.config import LLMConfig

__all__ = [
    "BREAKER_STATE_VALUES",
    "JSON_SCHEMA_NAME",
    "LLMCallError",
    "LLMError",
    "LLMGateway",
    "LLMUnavailable",
    "PrometheusBreakerListener",
    "Provider",
    "circuit_breaker_gauge",
]

log = structlog.get_logger(__name__)

Provider = Literal["ollama", "openai", "offline"]
Message = Mapping[str, str]
T = TypeVar("T")

JSON_SCHEMA_NAME = "root_cause_analysis"
BREAKER_STATE_VALUES = {
    pybreaker.STATE_CLOSED: 0,
    pybreaker.STATE_HALF_OPEN: 1,
    pybreaker.STATE_OPEN: 2,
}
_TRANSIENT_STATUS = {408, 429}
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
    """The LLM produced no answer. `kind` says why, in one word (for attempts and metrics)."""

    def __init__(self, message: str, *, kind: str = "error", tries: int = 0) -> None:
        super().__init__(message)
        self.kind = kind
        self.tries = tries


class LLMUnavailable(LLMError):
    """No LLM can answer now: none configured (`offline`), the circuit breaker is open, or it
    stayed unreachable / slow / failing through the transient retries."""


class LLMCallError(LLMError):
    """The LLM server refused the request (a 4xx other than 408/429, or an unexpected error):
    retrying the same request will not help."""


# --------------------------------------------------------------------------------------------
# Metrics


def _collector(registry: CollectorRegistry, name: str, factory: Callable[[], T]) -> T:
    """Create a collector, or reuse the one already registered under `name`."""
    try:
        return factory()
    except ValueError:  # "Duplicated timeseries in CollectorRegistry"
        existing = registry._names_to_collectors.get(name)  # no public lookup exists
        if existing is None:
            raise
        return existing  # type: ignore[return-value]


def circuit_breaker_gauge(registry: CollectorRegistry = REGISTRY) -> Gauge:
    """The gauge `firebreak_circuit_breaker_state{dependency}`; shared by every breaker."""
    return _collector(
        registry,
        "firebreak_circuit_breaker_state",
        lambda: Gauge(
            "firebreak_circuit_breaker_state",
            "Circuit breaker state per dependency: 0 closed, 1 half-open, 2 open",
            ["dependency"],
            registry=registry,
        ),
    )


class PrometheusBreakerListener(pybreaker.CircuitBreakerListener):
    """Keeps `firebreak_circuit_breaker_state{dependency=...}` equal to the breaker's state."""

    def __init__(self, gauge: Gauge, dependency: str) -> None:
        self._child = gauge.labels(dependency=dependency)

    def publish(self, state: str) -> None:
        self._child.set(BREAKER_STATE_VALUES.get(state, 0))

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        self.publish(new_state.name)
        log.warning(
            "circuit_breaker_state",
            dependency=cb.name,
            old=old_state.name if old_state else None,
            new=new_state.name,
        )


# --------------------------------------------------------------------------------------------
# Error classification


def _status_of(exc: BaseException) -> int | None:
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code
    if isinstance(exc, ollama.ResponseError) and exc.status_code > 0:
        return exc.status_code
    return None


def _classify(exc: BaseException) -> tuple[str, bool]:
    """(outcome kind, transient?) for an exception raised by a provider call."""
    if isinstance(exc, TimeoutError | openai.APITimeoutError | httpx.TimeoutException):
        return "timeout", True
    if isinstance(exc, openai.APIConnectionError | httpx.TransportError | ConnectionError):
        return "unreachable", True
    status = _status_of(exc)
    if status is not None:
        if status == 429:
            return "rate_limited", True
        if status >= 500 or status in _TRANSIENT_STATUS:
            return "server_error", True
        return "rejected", False
    if type(exc).__module__.startswith(("httpx", "httpcore")):  # httpx2 / httpcore2 too
        name = type(exc).__name__
        return ("timeout", True) if "Timeout" in name else ("unreachable", True)
    return "error", False


def _not_a_dependency_failure(exc: BaseException) -> bool:
    """Breaker exclusion: refused requests (4xx but 408/429) and outside cancellation."""
    if isinstance(exc, asyncio.CancelledError):
        return True
    status = _status_of(exc)
    return status is not None and 400 <= status < 500 and status not in _TRANSIENT_STATUS


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
        fail_max: int = 5,
        reset_timeout_s: float = 60.0,
        registry: CollectorRegistry | None = None,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 8.0,
    ) -> None:
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

        registry = REGISTRY if registry is None else registry
        self._listener = PrometheusBreakerListener(circuit_breaker_gauge(registry), self.dependency)
        self._listener.publish(pybreaker.STATE_CLOSED)
        self._calls = _collector(
            registry,
            "firebreak_llm_calls",
            lambda: Counter(
                "firebreak_llm_calls",
                "LLM HTTP calls by provider and outcome (ok, timeout, unreachable, "
                "server_error, rate_limited, rejected, error, circuit_open)",
                ["provider", "outcome"],
                registry=registry,
            ),
        )
        self._latency = _collector(
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
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout_s,
            exclude=[_not_a_dependency_failure],
            listeners=[self._listener],
            name=self.dependency,
        )

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
        by the openai provider). `overrides` reach the constructor (e.g. `backoff_base_s`)."""
        params: dict[str, Any] = {
            "provider": cfg.provider,
            "model": cfg.model,
            "base_url": cfg.base_url,
            "api_key": api_key,
            "timeout_s": cfg.timeout_s,
            "transient_retries": cfg.transient_retries,
            "temperature": cfg.temperature,
            "fail_max": cfg.circuit_breaker.fail_max,
            "reset_timeout_s": cfg.circuit_breaker.reset_timeout_s,
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
        return self.breaker.current_state

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
            kind, _ = _classify(exc)
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

    async def _with_resilience(self, call: Callable[[], Awaitable[str]]) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        tries = 0
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise LLMUnavailable(
                    f"{self.describe()}: no answer within {self.timeout_s:g}s ({tries} tries)",
                    kind="timeout",
                    tries=tries,
                )
            started = time.perf_counter()
            called = False
            try:
                with self.breaker.calling():
                    called = True
                    tries += 1
                    async with asyncio.timeout(remaining):
                        result = await call()
            except pybreaker.CircuitBreakerError as exc:
                cause = exc.__context__
                if not called or cause is None:  # open: nothing was sent
                    self._calls.labels(provider=self.provider, outcome="circuit_open").inc()
                    raise LLMUnavailable(
                        f"{self.dependency} circuit breaker is open: not calling the LLM",
                        kind="circuit_open",
                        tries=tries,
                    ) from exc
                kind, _ = _classify(cause)  # this very call failed and tripped the breaker
                self._observe(kind, started)
                raise LLMUnavailable(
                    f"{self.describe()}: {kind}: {_describe(cause)}; circuit breaker opened "
                    f"after {self.breaker.fail_max} consecutive failures",
                    kind="circuit_open",
                    tries=tries,
                ) from cause
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                kind, transient = _classify(exc)
                self._observe(kind, started)
                message = f"{self.describe()}: {kind}: {_describe(exc)}"
                if not transient:
                    raise LLMCallError(message, kind=kind, tries=tries) from exc
                if tries > self.transient_retries:
                    raise LLMUnavailable(
                        f"{message} (gave up after {tries} tries)", kind=kind, tries=tries
                    ) from exc
                delay = self._backoff(tries, exc)
                if loop.time() + delay >= deadline:
                    raise LLMUnavailable(
                        f"{message} (no time left within {self.timeout_s:g}s for a retry)",
                        kind=kind,
                        tries=tries,
                    ) from exc
                log.info(
                    "llm_retry",
                    provider=self.provider,
                    kind=kind,
                    tries=tries,
                    delay_s=round(delay, 3),
                )
                await asyncio.sleep(delay)
                continue
            self._observe("ok", started)
            return result

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
