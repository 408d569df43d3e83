"""The follow-up tools' arguments, exactly as the contract names them: one pydantic model per
tool, which both validates a model's call and is the source of the JSON schema it is offered
(agents/tool_specs.py). A model's docstring is the tool's description as the LLM reads it, a
field's `description` the argument's.

Validation is stricter than the schema says (name patterns, lengths): a model that sends a bad
value gets a precise `bad arguments: ...` answer, and the schema stays short, since it is sent
with every prompt.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from firebreak.tools.kube_config import KINDS

__all__ = [
    "ARGUMENTS",
    "DESCRIBABLE",
    "TOOL_NAMES",
    "KubernetesDescribe",
    "KubernetesEvents",
    "KubernetesLogs",
    "QueryMetrics",
    "SearchLogs",
    "ToolArgs",
]

_NAME = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
_RFC3339 = "RFC 3339"
DESCRIBABLE = ("pod", "deployment", "replicaset", "job", "node")


class ToolArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    source: str  # offered as an enum of the configured sources' names (tool_specs)


class _Span(ToolArgs):
    start: datetime | None = Field(None, description=_RFC3339)
    end: datetime | None = Field(None, description=_RFC3339)

    @field_validator("start", "end")
    @classmethod
    def _zoned(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    @model_validator(mode="after")
    def _ordered(self) -> _Span:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class SearchLogs(_Span):
    """Search a log source in its own language (Loki: LogQL; Elasticsearch: query string;
    files: regular expression). Newest first; default: the alert's window."""

    query: str = Field(min_length=1, max_length=2000)
    limit: int = Field(50, ge=1, le=500)


class QueryMetrics(_Span):
    """PromQL range query, at most 24 h (default: the alert's window); each series as
    baseline, current, peak, change point."""

    promql: str = Field(min_length=1, max_length=2000)
    step_s: float | None = Field(None, ge=1, le=86_400)


class KubernetesEvents(ToolArgs):
    """Events in a namespace (or of one object), Warning first, de-duplicated."""

    namespace: str = Field(pattern=_LABEL)
    name: str | None = Field(None, pattern=_NAME, description="the involved object's name")


class KubernetesDescribe(ToolArgs):
    """Status, conditions, restarts, last termination and images of one object; of a job,
    how it ended (e.g. Failed BackoffLimitExceeded) and its pod counts."""

    # Offered as required: leaving it out for a pod is a model's common slip; a node's is "".
    model_config = ConfigDict(
        json_schema_extra={"required": ["source", "kind", "namespace", "name"]}
    )

    kind: str = Field(json_schema_extra={"enum": list(DESCRIBABLE)})
    namespace: str = Field("", pattern=r"^$|" + _LABEL)  # nodes have none
    name: str = Field(pattern=_NAME)

    @field_validator("kind")
    @classmethod
    def _known(cls, kind: str) -> str:
        if kind.lower() not in KINDS:
            raise ValueError("kind must be one of pod, deployment, replicaset, job, node")
        return KINDS[kind.lower()]

    @model_validator(mode="after")
    def _namespaced(self) -> KubernetesDescribe:
        if self.kind != "node" and not self.namespace:
            raise ValueError(f"namespace is required for a {self.kind}")
        return self


class KubernetesLogs(ToolArgs):
    """A container's last log lines. previous=false (the default) reads the current
    container, also one that has terminated (a failed Job's pod, a Completed or Error
    container): its own output, where it said why it stopped. previous=true reads the
    container before the last restart (a crash loop, an OOM kill)."""

    namespace: str = Field(pattern=_LABEL)
    pod: str = Field(pattern=_NAME)
    container: str | None = Field(None, pattern=_LABEL)
    previous: bool = False
    tail_lines: int = Field(100, ge=1, le=1000)


# The tools by name, in the order they are offered.
ARGUMENTS: dict[str, type[ToolArgs]] = {
    "search_logs": SearchLogs,
    "query_metrics": QueryMetrics,
    "kubernetes_events": KubernetesEvents,
    "kubernetes_describe": KubernetesDescribe,
    "kubernetes_logs": KubernetesLogs,
}
TOOL_NAMES = tuple(ARGUMENTS)
