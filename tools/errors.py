"""One classification of failed dependency calls, shared by the LLM gateway and every source.

Why one: the circuit breaker, the retry loop and the error messages must agree on what a
failure means, whether it comes from langchain-openai, the ollama client, httpx (Loki,
Elasticsearch, Prometheus) or a Kubernetes client. The categories:

- `transient`: a blip worth retrying soon (connection refused or reset, HTTP 5xx, 408);
- `timeout`: no answer within the deadline (retryable, and the breaker counts it);
- `rate_limited`: HTTP 429 (retryable after `Retry-After`);
- `prolonged`: retrying now will not help and the dependency is to blame: an answer we cannot
  read, or a transient failure that lasted through every retry (the caller says so);
- `bad_request`: the dependency refused OUR request (4xx but 408/429). It answered, so it is
  up: not a dependency failure, the breaker does not count it;
- `circuit_open`: not called at all, the dependency's breaker is open.

`Failure.cause` keeps the finer word for messages and per-provider metrics (`server_error`,
`unreachable`, ...). The HTTP status is read by duck typing (`status_code`, or `status` as the
Kubernetes clients spell it), so a new client's errors classify without a change here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import httpx
import pybreaker

__all__ = [
    "Category",
    "CircuitOpenError",
    "Failure",
    "SourceError",
    "classify",
    "status_of",
]


class Category(StrEnum):
    TRANSIENT = "transient"
    PROLONGED = "prolonged"
    CIRCUIT_OPEN = "circuit_open"
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    BAD_REQUEST = "bad_request"

    @property
    def retryable(self) -> bool:
        return self in _RETRYABLE

    @property
    def counts_against_dependency(self) -> bool:
        """Whether a circuit breaker counts it as a failure of the dependency."""
        return self not in _NOT_FAILURES


_RETRYABLE = frozenset({Category.TRANSIENT, Category.TIMEOUT, Category.RATE_LIMITED})
_NOT_FAILURES = frozenset({Category.BAD_REQUEST, Category.CIRCUIT_OPEN})


class CircuitOpenError(pybreaker.CircuitBreakerError):
    """The call was refused without reaching the dependency: its breaker is open (or half-open
    with every trial call taken). A pybreaker error, so code that knows pybreaker knows it."""

    def __init__(self, dependency: str, detail: str) -> None:
        super().__init__(f"circuit open: {dependency} {detail}")
        self.dependency = dependency


class SourceError(Exception):
    """A source (Loki, Elasticsearch, Prometheus...) refused or failed a query; the message is
    written for people, `status_code` is the HTTP status when there was one, `category`
    overrides what it says (a 200 answer of the wrong kind is still our bad request)."""

    def __init__(
        self, message: str, *, status_code: int | None = None, category: Category | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.category = category


@dataclass(frozen=True, slots=True)
class Failure:
    category: Category
    cause: str  # timeout, unreachable, server_error, rate_limited, rejected, unexpected, ...
    status: int | None = None


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an error carries, if any (openai, ollama, httpx, ours, Kubernetes)."""
    for attribute in ("status_code", "status"):
        value = getattr(exc, attribute, None)
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            return value
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code
    return None


def classify(exc: BaseException) -> Failure:
    """The category (and cause) of an exception raised by a dependency call."""
    if isinstance(exc, pybreaker.CircuitBreakerError):
        return Failure(Category.CIRCUIT_OPEN, "circuit_open")
    if isinstance(exc, SourceError) and exc.category is not None:
        cause = "rejected" if exc.category is Category.BAD_REQUEST else exc.category.value
        return Failure(exc.category, cause)
    if isinstance(exc, TimeoutError | httpx.TimeoutException) or _is_openai(exc, "APITimeoutError"):
        return Failure(Category.TIMEOUT, "timeout")
    status = status_of(exc)
    if status is not None:
        return _by_status(status)
    if isinstance(exc, httpx.TransportError | ConnectionError) or _is_openai(
        exc, "APIConnectionError"
    ):
        return Failure(Category.TRANSIENT, "unreachable")
    if type(exc).__module__.startswith(("httpx", "httpcore")):  # httpx2 / httpcore2 too
        if "Timeout" in type(exc).__name__:
            return Failure(Category.TIMEOUT, "timeout")
        return Failure(Category.TRANSIENT, "unreachable")
    return Failure(Category.PROLONGED, "unexpected")


def _is_openai(exc: BaseException, name: str) -> bool:
    """An `openai.<name>` or a subclass, told by its class hierarchy: importing the SDK here
    would cost every command that only reads the configuration a second and a half."""
    return any(
        cls.__name__ == name and cls.__module__.startswith("openai") for cls in type(exc).__mro__
    )


def _by_status(status: int) -> Failure:
    if status == 429:
        return Failure(Category.RATE_LIMITED, "rate_limited", status)
    if status >= 500 or status == 408:
        return Failure(Category.TRANSIENT, "server_error", status)
    if status >= 400:
        return Failure(Category.BAD_REQUEST, "rejected", status)
    return Failure(Category.PROLONGED, "unexpected", status)  # a 3xx we did not follow
