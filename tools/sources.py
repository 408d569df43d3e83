"""What a source is, and which `type:` names which backend: the one place a source is added.

A log backend (Loki, Elasticsearch, files) is a `LogSource`, a metrics backend (Prometheus) a
`MetricSource`, a cluster (Kubernetes) a `ClusterSource`. Each answers two kinds of question:
`fetch`, the evidence around an alert that the investigation gathers on its own (it never
raises: a failure is in its report), and the follow-up tools' questions in the backend's own
language (these raise, and their caller guards them); `check` reaches it for `firebreak
check`.

Adding a log backend is one module with its config section (a `Section` with
`type: Literal["name"]`) and a class taking `(config, *, http, breaker)`, plus one line in
`LOG_SOURCES`: the `sources.logs[]` schema, the log fetcher, `search_logs`, the breakers and
`firebreak check` follow from the registry. The cluster client is imported only when a cluster
is opened: loading the configuration must not import aiohttp or the Kubernetes client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Protocol,
    TypeAlias,
    Union,
    cast,
    runtime_checkable,
)

import httpx
from pydantic import Field

from firebreak.tools.breaker import Breaker, BreakerConfig
from firebreak.tools.config import InvestigationConfig, Section
from firebreak.tools.elasticsearch import ElasticsearchLogs, ElasticsearchSource
from firebreak.tools.files import FileLogs, FileSource
from firebreak.tools.kube_config import KubernetesSource
from firebreak.tools.loki import LokiLogs, LokiSource
from firebreak.tools.models import AlertContext, KubeFinding, LogLine, MetricReading, SourceReport
from firebreak.tools.prometheus import PrometheusMetrics, PrometheusSource

__all__ = [
    "LOG_SOURCES",
    "METRIC_SOURCES",
    "ClusterSource",
    "LogSource",
    "MetricSource",
    "Source",
    "SourceKind",
    "SourcesConfig",
    "breaker_configs",
    "open_cluster",
    "open_log_source",
    "open_metric_source",
]


@runtime_checkable
class Source(Protocol):
    """What every source is: a name, and a `check` that reaches it."""

    name: str
    where: str  # how a failed check names it ("loki at URL"); "" when the reason does

    async def check(self) -> str:
        """Reach it once: one line for `firebreak check`; raises with the reason."""
        ...


@runtime_checkable
class LogSource(Source, Protocol):
    async def fetch(
        self, alert: AlertContext, investigation: InvestigationConfig
    ) -> tuple[list[LogLine], SourceReport]:
        """The lines around the alert, oldest first, and how the source answered."""
        ...

    async def search(
        self, query: str, *, start: datetime, end: datetime, limit: int
    ) -> list[LogLine]:
        """Lines matching `query` (the backend's own language) in start..end, any order."""
        ...


@runtime_checkable
class MetricSource(Source, Protocol):
    async def fetch(
        self, alert: AlertContext, investigation: InvestigationConfig
    ) -> tuple[list[MetricReading], SourceReport]:
        """The alert's expression and the configured queries, summarised."""
        ...

    async def query(
        self, promql: str, *, start: datetime, end: datetime, step: float, starts_at: datetime
    ) -> list[MetricReading]:
        """Each series of a range query, summarised against `starts_at`."""
        ...


@runtime_checkable
class ClusterSource(Source, Protocol):
    async def fetch(
        self, alert: AlertContext, investigation: InvestigationConfig
    ) -> tuple[list[KubeFinding], SourceReport]:
        """What the cluster knows about the alert's pods."""
        ...

    async def events(self, namespace: str, name: str | None = None) -> list[KubeFinding]: ...

    async def describe(self, kind: str, namespace: str, name: str) -> list[KubeFinding]: ...

    async def logs(
        self,
        namespace: str,
        pod: str,
        *,
        container: str | None = None,
        previous: bool = False,
        tail_lines: int = 100,
    ) -> list[KubeFinding]: ...

    async def aclose(self) -> None:
        """Close what the tool questions opened."""
        ...


@dataclass(frozen=True)
class SourceKind:
    """One backend: its config section and the class that reads it. `networked`: reached over
    the network, so it has a circuit breaker (`circuit_breaker` in its section)."""

    config: type[Section]
    source: Any  # the class: `source(config, http=..., breaker=...)` is a Log/MetricSource
    networked: bool = True


# The registries: a config `type:` value -> its backend.
LOG_SOURCES: Mapping[str, SourceKind] = {
    "loki": SourceKind(LokiSource, LokiLogs),
    "elasticsearch": SourceKind(ElasticsearchSource, ElasticsearchLogs),
    "file": SourceKind(FileSource, FileLogs, networked=False),
}
METRIC_SOURCES: Mapping[str, SourceKind] = {
    "prometheus": SourceKind(PrometheusSource, PrometheusMetrics),
}


def _one_of(kinds: Mapping[str, SourceKind]) -> Any:
    """The config entry of any registered kind, told apart by `type`."""
    models = tuple(kind.config for kind in kinds.values())
    if len(models) == 1:
        return models[0]
    return Annotated[Union[models], Field(discriminator="type")]  # noqa: UP007 - built at run time


if TYPE_CHECKING:  # the checker cannot run the registry: the same kinds, spelled out
    LogSourceConfig: TypeAlias = LokiSource | ElasticsearchSource | FileSource
    MetricSourceConfig: TypeAlias = PrometheusSource
else:
    LogSourceConfig = _one_of(LOG_SOURCES)
    MetricSourceConfig = _one_of(METRIC_SOURCES)


class SourcesConfig(Section):
    """`sources:`: the configured logs, metrics and clusters."""

    logs: list[LogSourceConfig] = Field(default_factory=list)
    metrics: list[MetricSourceConfig] = Field(default_factory=list)
    kubernetes: list[KubernetesSource] = Field(default_factory=list)


def _opened(
    kinds: Mapping[str, SourceKind],
    config: Any,
    http: httpx.AsyncClient | None,
    breaker: Breaker | None,
) -> Any:
    return kinds[config.type].source(config, http=http, breaker=breaker)


def open_log_source(
    config: Any, *, http: httpx.AsyncClient | None = None, breaker: Breaker | None = None
) -> LogSource:
    """The `sources.logs[]` entry as its backend. `breaker` guards `fetch` only."""
    return cast(LogSource, _opened(LOG_SOURCES, config, http, breaker))


def open_metric_source(
    config: Any, *, http: httpx.AsyncClient | None = None, breaker: Breaker | None = None
) -> MetricSource:
    """The `sources.metrics[]` entry as its backend. `breaker` guards `fetch` only."""
    return cast(MetricSource, _opened(METRIC_SOURCES, config, http, breaker))


def open_cluster(config: KubernetesSource, *, breaker: Breaker | None = None) -> ClusterSource:
    """The `sources.kubernetes[]` entry as a cluster (its client imported only now)."""
    from firebreak.tools.kubernetes import KubeCluster

    return KubeCluster(config, breaker=breaker)


def breaker_configs(sources: SourcesConfig) -> dict[str, BreakerConfig | None]:
    """Each source reached over the network by name, with its breaker settings (None: the
    defaults). A file is not a dependency that can be down."""
    found: dict[str, BreakerConfig | None] = {}
    for log in sources.logs:
        if LOG_SOURCES[log.type].networked:  # a networked kind's section has `circuit_breaker`
            found[log.name] = getattr(log, "circuit_breaker", None)
    for metric in sources.metrics:
        if METRIC_SOURCES[metric.type].networked:
            found[metric.name] = metric.circuit_breaker
    for cluster in sources.kubernetes:
        found[cluster.name] = None
    return found
