"""`sources.kubernetes[]`: one cluster's configuration, and the names every reader of a cluster
shares (object kinds, name patterns, the error a failed read raises).

Apart from the client (tools/kubernetes.py) because loading the configuration must not import
aiohttp or the Kubernetes client: only yaml, to check the kubeconfig names an existing context.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from firebreak.tools.models import MAX_ERROR_CHARS

__all__ = [
    "KINDS",
    "NAMESPACE_RE",
    "NAME_RE",
    "KubernetesError",
    "KubernetesSource",
    "kube_context",
]

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")  # DNS subdomain (pods, nodes)
NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # DNS label
KINDS = {
    "pod": "pod", "pods": "pod", "po": "pod",
    "deployment": "deployment", "deployments": "deployment", "deploy": "deployment",
    "replicaset": "replicaset", "replicasets": "replicaset", "rs": "replicaset",
    "job": "job", "jobs": "job",
    "node": "node", "nodes": "node", "no": "node",
}  # fmt: skip


class KubernetesSource(BaseModel):
    """`sources.kubernetes[]`: one cluster, read with a kubeconfig or the service account."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kubeconfig: str | None = None
    in_cluster: bool = False  # the pod's service account instead of a kubeconfig
    context: str | None = None  # default: the kubeconfig's current-context
    namespace: str = "{{ labels.namespace }}"
    selector: str | None = None  # pod label selector template; else the alert's `pod` label
    max_pods: int = Field(5, ge=1, le=50)
    log_lines: int = Field(30, ge=1, le=500)  # of a crashed (terminated) container's log
    timeout_s: float = Field(10, gt=0)

    @field_validator("kubeconfig")
    @classmethod
    def _kubeconfig_exists(cls, path: str | None) -> str | None:
        if path is not None:
            _read_kubeconfig(path)
        return path

    @field_validator("context")
    @classmethod
    def _context_known(cls, context: str | None, info: ValidationInfo) -> str | None:
        path = info.data.get("kubeconfig")
        if context is None or path is None:
            return context
        names, _ = _read_kubeconfig(path)
        if context not in names:
            known = ", ".join(names) or "none"
            raise ValueError(f"context {context!r} is not in kubeconfig {path} (contexts: {known})")
        return context

    @model_validator(mode="after")
    def _one_way_in(self) -> KubernetesSource:
        if self.in_cluster and (self.kubeconfig or self.context):
            raise ValueError("in_cluster: true uses the service account: drop kubeconfig/context")
        if not self.in_cluster and self.kubeconfig is None:
            raise ValueError("set kubeconfig: PATH, or in_cluster: true")
        if self.kubeconfig is not None and self.context is None:
            _, current = _read_kubeconfig(self.kubeconfig)
            if not current:
                raise ValueError(
                    f"kubeconfig {self.kubeconfig} has no current-context: set context"
                )
        return self


def _read_kubeconfig(path: str) -> tuple[list[str], str | None]:
    """Context names and current-context of a kubeconfig; ValueError naming the file."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ValueError(f"kubeconfig {path} does not exist")
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"kubeconfig {path} is unreadable: {' '.join(str(exc).split())}") from None
    if not isinstance(document, dict):
        raise ValueError(f"kubeconfig {path} is not a kubeconfig (no mapping at the top)")
    contexts = document.get("contexts") or []
    names = [str(c.get("name")) for c in contexts if isinstance(c, dict) and c.get("name")]
    current = document.get("current-context") or None
    return names, str(current) if current else None


class KubernetesError(Exception):
    """The cluster could not be read; the message says what was asked and why it failed."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message[:MAX_ERROR_CHARS])
        self.status = status


def kube_context(source: KubernetesSource) -> str:
    """The context a kubeconfig source reads: its own, else the kubeconfig's current one."""
    if source.context:
        return source.context
    return _read_kubeconfig(source.kubeconfig or "")[1] or "?"
