"""The skeleton every HTTP source fetch shares: report, client, breaker, errors.

Loki, Elasticsearch and Prometheus each send a few queries concurrently for one alert, and a
fetch never raises: a failed query becomes part of `SourceReport.error` and the other queries'
results are still used. `SourceFetch` is that skeleton, once: it times the fetch, sends every
query through the source's circuit breaker and collects the distinct error messages;
`lent_client` gives the fetch a client of its own when the caller lends none. A source whose
breaker is open is reported as "circuit open" at once, without a request, instead of costing
each investigation a timeout. `HttpSource` is what the source classes share around it: the
config, the lent client and the breaker that guards `fetch`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import httpx

from firebreak.tools.breaker import Breaker
from firebreak.tools.config import InvestigationConfig
from firebreak.tools.errors import SourceError
from firebreak.tools.models import AlertContext, SourceReport, describe_error
from firebreak.tools.templating import QueryTemplateError, render_query

__all__ = [
    "HttpSource",
    "Query",
    "SourceFetch",
    "distinct",
    "lent_client",
    "safe_url",
    "status_error",
]

T = TypeVar("T")
C = TypeVar("C")  # the client a query runs on: httpx for HTTP sources, any for others
Query = Callable[[httpx.AsyncClient], Awaitable[T]]


class SourceFetch:
    """One fetch from one source: `refused()` first, then `gather()` its queries (in one or
    more rounds), then `finish()`."""

    def __init__(
        self,
        name: str,
        kind: str,
        *,
        breaker: Breaker | None = None,
        own_error: type[Exception] = SourceError,
    ) -> None:
        self.report = SourceReport(source=name, kind=kind)
        self.errors: list[str] = []
        self._breaker = breaker
        self._own_error = own_error
        self._began = time.perf_counter()

    def refused(self) -> bool:
        """True when the breaker would refuse every query now; the report then says so."""
        if self._breaker is None:
            return False
        refusal = self._breaker.refusal()
        if refusal is None:
            return False
        self.error(f"circuit open: {self._breaker.name} {refusal}")
        return True

    def error(self, message: str) -> None:
        if message not in self.errors:
            self.errors.append(message)

    def render(self, template: str, alert: AlertContext) -> str | None:
        """`template` rendered for `alert`, or None with the template's error recorded."""
        try:
            return render_query(template, alert)
        except QueryTemplateError as exc:
            self.error(str(exc))
            return None

    async def gather(
        self,
        queries: Sequence[Callable[[C], Awaitable[T]]],
        client: C,
        *,
        labels: Sequence[str] | None = None,
    ) -> list[T | None]:
        """Run `queries` concurrently on `client`: each result, or None where the query failed
        and its error was recorded (prefixed with its label, when `labels` are given). Any
        async client works (a Kubernetes source passes its own)."""
        results = await asyncio.gather(
            *(self._send(query, client) for query in queries), return_exceptions=True
        )
        answers: list[T | None] = []
        for index, result in enumerate(results):
            if isinstance(result, BaseException):
                message = describe_error(result, self._own_error)  # re-raises cancellation
                self.error(f"{labels[index]}: {message}" if labels else message)
                answers.append(None)
            else:
                answers.append(result)
        return answers

    async def _send(self, query: Callable[[C], Awaitable[T]], client: C) -> T:
        if self._breaker is None:
            return await query(client)
        return await self._breaker.call(lambda: query(client))

    def finish(self, items: int) -> SourceReport:
        return self.report.finish(items, self.errors, self._began)


@asynccontextmanager
async def lent_client(
    client: httpx.AsyncClient | None, timeout_s: float
) -> AsyncIterator[httpx.AsyncClient]:
    """`client` when the caller lends one (the investigation's shared client), else a client
    of our own for this fetch, closed after it."""
    if client is not None:
        yield client
        return
    async with httpx.AsyncClient(timeout=timeout_s) as own:
        yield own


def safe_url(url: str) -> str:
    """The URL without user info (`https://user:pw@host` → `https://host`), for anything
    people read."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return url
    if not parsed.userinfo:
        return url
    return str(parsed.copy_with(username=None, password=None))


def status_error(response: httpx.Response, error: type[SourceError] = SourceError) -> SourceError:
    """A health check's unexpected answer as `error`: its status and the start of its body."""
    body = " ".join(response.text.split())[:160]
    message = f"HTTP {response.status_code}" + (f": {body}" if body else "")
    return error(message, status_code=response.status_code)


def distinct(results: Iterable[Sequence[T] | None], key: Callable[[T], Hashable]) -> list[T]:
    """The items of every answered query, each once and in order: a source's queries overlap
    (the plain one also finds what the error-filtered one finds)."""
    seen: set[Hashable] = set()
    items: list[T] = []
    for result in results:
        for item in result or []:
            if (found := key(item)) not in seen:
                seen.add(found)
                items.append(item)
    return items


class HttpSection(Protocol):
    """What every HTTP source's config section names (read-only: the sections are frozen)."""

    @property
    def name(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def timeout_s(self) -> float: ...


ConfigT = TypeVar("ConfigT", bound=HttpSection)
ItemT = TypeVar("ItemT")  # what `fetch` finds: log lines, metric readings


class HttpSource(Generic[ConfigT, ItemT]):
    """A source reached over HTTP (tools/sources.py): its config, the client the caller lends
    (else one per call) and the breaker that guards `fetch`; the follow-up questions are not
    guarded, their caller handles the errors. `fetcher` is the module's fetch function."""

    kind: ClassVar[str]  # "loki": how a failed check names it
    fetcher: ClassVar[Callable[..., Awaitable[tuple[list[Any], SourceReport]]]]

    def __init__(
        self,
        config: ConfigT,
        *,
        http: httpx.AsyncClient | None = None,
        breaker: Breaker | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.where = f"{self.kind} at {safe_url(config.url)}"
        self._http = http
        self._breaker = breaker

    @property
    def base_url(self) -> str:
        return self.config.url.rstrip("/")

    def client(self) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        """The lent client, else one of our own for this call."""
        return lent_client(self._http, self.config.timeout_s)

    async def fetch(
        self, alert: AlertContext, investigation: InvestigationConfig
    ) -> tuple[list[ItemT], SourceReport]:
        """The evidence around the alert and how the source answered (never raises)."""
        fetcher = type(self).fetcher
        return await fetcher(
            self.config, alert, investigation, client=self._http, breaker=self._breaker
        )
