"""A Kubernetes-API-compatible server for tests, spoken to over real sockets.

The real client (`kubernetes_asyncio`, configured from a kubeconfig this module writes) talks
to it exactly as to a cluster's API server. It runs an ``aiohttp.web`` application on
127.0.0.1 (free port) in a background thread with its own event loop, like the Slack and LLM
fakes beside it, so it serves sync and async tests alike.

The client validates what it deserialises (a ``/version`` without ``buildDate`` or a container
status without ``imageID`` fails), so every object here is shaped like a real API server's:
full metadata (uid, resourceVersion, creationTimestamp), list kinds with list metadata and
items without ``kind``/``apiVersion``, and ``Status`` objects for errors.

The API subset: ``/version``; pods list (``labelSelector``, ``limit``) and get in a
namespace; the pod log (``container``, ``previous``, ``tailLines``, ``timestamps``); core/v1
events (``fieldSelector`` on ``involvedObject.*``, ``type``, ``reason``); apps/v1 deployment
get; replica sets list (``labelSelector``) and get; batch/v1 job get; node get.
Bearer-token authentication (401 ``Unauthorized``); anything but GET answers 405 (and is
recorded, so a test can assert the client only read). ``outage = True`` answers 503
everywhere.

Build objects with ``pod()``, ``event()``, ``deployment()``, ``replicaset()``, ``job()``,
``node()`` and
add them (``add(obj)``), set container logs with ``set_log()``, and point the client at the
server with ``write_kubeconfig(path)``.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from tests.fakes.serving import ThreadedServer

DEFAULT_TOKEN = "k8s-test-token-0123456789"
CONTEXT = "fake-cluster"
VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.4",
    "gitCommit": "a78aa47129b8539636eb86a9d00e31b2720fe06b",
    "gitTreeState": "clean",
    "buildDate": "2024-12-10T11:37:01Z",
    "goVersion": "go1.22.9",
    "compiler": "gc",
    "platform": "linux/amd64",
}

_resource_versions = itertools.count(1000)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _metadata(
    name: str,
    namespace: str | None,
    created: datetime,
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    owner: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "uid": str(uuid.uuid4()),
        "resourceVersion": str(next(_resource_versions)),
        "creationTimestamp": rfc3339(created),
    }
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    if owner:
        meta["ownerReferences"] = [
            {
                "apiVersion": owner["apiVersion"],
                "kind": owner["kind"],
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return meta


def _pod_template_hash(images: Mapping[str, str]) -> str:
    return hashlib.sha1(repr(sorted(images.items())).encode()).hexdigest()[:10]


# --------------------------------------------------------------------------------------------
# Object builders


def deployment(
    name: str,
    namespace: str,
    *,
    created: datetime,
    images: Mapping[str, str],
    labels: Mapping[str, str] | None = None,
    replicas: int = 2,
    ready: int = 2,
    revision: int = 1,
) -> dict[str, Any]:
    """An apps/v1 Deployment selecting `labels` (default `app=<name>`)."""
    labels = dict(labels or {"app": name})
    available = ready >= replicas
    conditions = [
        {
            "type": "Available",
            "status": "True" if available else "False",
            "lastUpdateTime": rfc3339(created),
            "lastTransitionTime": rfc3339(created),
            "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
            "message": "Deployment has minimum availability."
            if available
            else "Deployment does not have minimum availability.",
        },
        {
            "type": "Progressing",
            "status": "True",
            "lastUpdateTime": rfc3339(created),
            "lastTransitionTime": rfc3339(created),
            "reason": "NewReplicaSetAvailable",
            "message": f'ReplicaSet "{name}" has successfully progressed.',
        },
    ]
    return {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": _metadata(
            name,
            namespace,
            created,
            labels=labels,
            annotations={"deployment.kubernetes.io/revision": str(revision)},
        ),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": _template(labels, images),
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
            },
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
        "status": {
            "observedGeneration": revision,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            **({} if available else {"unavailableReplicas": replicas - ready}),
            "conditions": conditions,
        },
    }


def _template(
    labels: Mapping[str, str], images: Mapping[str, str], restart_policy: str = "Always"
) -> dict[str, Any]:
    return {
        "metadata": {"labels": dict(labels)},
        "spec": {
            "containers": [
                {
                    "name": container,
                    "image": image,
                    "resources": {"limits": {"memory": "256Mi"}},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent",
                }
                for container, image in images.items()
            ],
            "restartPolicy": restart_policy,
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler",
        },
    }


def replicaset(
    owner: Mapping[str, Any],
    *,
    revision: int,
    created: datetime,
    images: Mapping[str, str],
    replicas: int = 0,
) -> dict[str, Any]:
    """A ReplicaSet of `owner` (a deployment()) at `revision`, running `images`."""
    template_hash = _pod_template_hash(images)
    labels = {**owner["spec"]["selector"]["matchLabels"], "pod-template-hash": template_hash}
    name = f"{owner['metadata']['name']}-{template_hash}"
    return {
        "kind": "ReplicaSet",
        "apiVersion": "apps/v1",
        "metadata": _metadata(
            name,
            owner["metadata"]["namespace"],
            created,
            labels=labels,
            annotations={
                "deployment.kubernetes.io/desired-replicas": str(owner["spec"]["replicas"]),
                "deployment.kubernetes.io/max-replicas": str(owner["spec"]["replicas"] + 1),
                "deployment.kubernetes.io/revision": str(revision),
            },
            owner=owner,
        ),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": _template(labels, images),
        },
        "status": {
            "replicas": replicas,
            "fullyLabeledReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "observedGeneration": 1,
        },
    }


def job(
    name: str,
    namespace: str,
    *,
    created: datetime,
    images: Mapping[str, str],
    failed: bool = True,
    backoff_limit: int = 0,
    finished: datetime | None = None,
) -> dict[str, Any]:
    """A batch/v1 Job that ran one pod and ended at `finished`: failed (`BackoffLimitExceeded`)
    or complete. Its pod template carries the labels the Job controller sets (`job-name`,
    `controller-uid` and their `batch.kubernetes.io/` forms), so a pod() owned by it is
    labelled like a real Job's pod."""
    meta = _metadata(name, namespace, created)
    uid = meta["uid"]
    labels = {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid,
        "job-name": name,
    }
    meta["labels"] = dict(labels)
    meta["generation"] = 1
    meta["annotations"] = {"batch.kubernetes.io/job-tracking": ""}
    stamp, ended = rfc3339(created), rfc3339(finished or created)
    outcome = (
        ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        if failed
        else ("Complete", "CompletionsReached", "Reached expected number of succeeded pods")
    )
    target = "FailureTarget" if failed else "SuccessCriteriaMet"
    conditions = [
        {"type": kind, "status": "True", "lastProbeTime": ended, "lastTransitionTime": ended,
         "reason": outcome[1], "message": outcome[2]}
        for kind in (target, outcome[0])
    ]  # fmt: skip
    status: dict[str, Any] = {
        "conditions": conditions,
        "startTime": stamp,
        "terminating": 0,
        "ready": 0,
        "uncountedTerminatedPods": {},
        **({"failed": 1} if failed else {"succeeded": 1, "completionTime": ended}),
    }
    return {
        "kind": "Job",
        "apiVersion": "batch/v1",
        "metadata": meta,
        "spec": {
            "parallelism": 1,
            "completions": 1,
            "backoffLimit": backoff_limit,
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}},
            "template": _template(labels, images, restart_policy="Never"),
            "completionMode": "NonIndexed",
            "suspend": False,
            "podReplacementPolicy": "TerminatingOrFailed",
        },
        "status": status,
    }


@dataclass(frozen=True)
class Terminated:
    """A container's termination: the current one (`state.terminated`) or the one before a
    restart (`lastState.terminated`)."""

    reason: str = "OOMKilled"
    exit_code: int = 137
    finished: datetime | None = None
    started: datetime | None = None


def pod(
    name: str,
    namespace: str,
    *,
    created: datetime,
    owner: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
    images: Mapping[str, str] | None = None,
    node_name: str = "node-1",
    phase: str = "Running",
    ready: bool = True,
    restarts: int = 0,
    last_terminated: Terminated | None = None,
    waiting_reason: str | None = None,
    terminated: Terminated | None = None,
) -> dict[str, Any]:
    """A core/v1 Pod. With `owner` (a replicaset() or job()) it carries the owner's pod
    template labels, images and restart policy. With `terminated` its containers have ended
    (`state.terminated`), as a Job's pod's do."""
    restart_policy = "Always"
    if owner is not None:
        template = owner["spec"]["template"]
        labels = {**template["metadata"]["labels"], **(labels or {})}
        images = images or {c["name"]: c["image"] for c in template["spec"]["containers"]}
        restart_policy = template["spec"]["restartPolicy"]
    images = dict(images or {"app": "registry.example/app:1.0.0"})
    ready = ready and terminated is None  # an ended container is never ready
    started = rfc3339(created)
    statuses = []
    for container, image in images.items():
        status: dict[str, Any] = {
            "name": container,
            "image": image,
            "imageID": f"{image.split(':')[0]}@sha256:{hashlib.sha256(image.encode()).hexdigest()}",
            "containerID": f"containerd://{uuid.uuid4().hex}{uuid.uuid4().hex}",
            "ready": ready,
            "started": ready,
            "restartCount": restarts,
        }
        if terminated is not None:
            status["state"] = {"terminated": _terminated(terminated, created)}
        elif waiting_reason:
            status["state"] = {
                "waiting": {
                    "reason": waiting_reason,
                    "message": f"back-off 5m0s restarting failed container={container} "
                    f"pod={name}_{namespace}",
                }
            }
        else:
            status["state"] = {"running": {"startedAt": started}}
        if last_terminated is not None:
            status["lastState"] = {"terminated": _terminated(last_terminated, created)}
        else:
            status["lastState"] = {}
        statuses.append(status)
    condition = "True" if ready else "False"
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": _metadata(name, namespace, created, labels=labels, owner=owner),
        "spec": {
            **_template(labels or {}, images, restart_policy)["spec"],
            "nodeName": node_name,
            "serviceAccountName": "default",
        },
        "status": {
            "phase": phase,
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": started},
                {"type": "Ready", "status": condition, "lastTransitionTime": started},
                {"type": "ContainersReady", "status": condition, "lastTransitionTime": started},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
            ],
            "hostIP": "192.0.2.10",
            "podIP": "198.51.100.7",
            "podIPs": [{"ip": "198.51.100.7"}],
            "startTime": started,
            "containerStatuses": statuses,
            "qosClass": "Burstable",
        },
    }


def _terminated(ended: Terminated, created: datetime) -> dict[str, Any]:
    return {
        "exitCode": ended.exit_code,
        "reason": ended.reason,
        "startedAt": rfc3339(ended.started or created),
        "finishedAt": rfc3339(ended.finished or created),
        "containerID": f"containerd://{uuid.uuid4().hex}{uuid.uuid4().hex}",
    }


def event(
    involved: Mapping[str, Any],
    reason: str,
    message: str,
    *,
    first: datetime,
    last: datetime | None = None,
    count: int = 1,
    type: str = "Warning",
    component: str = "kubelet",
) -> dict[str, Any]:
    """A core/v1 Event about `involved` (any object built here), as the kubelet writes it."""
    meta = involved["metadata"]
    name = f"{meta['name']}.{uuid.uuid4().hex[:16]}"
    last = last or first
    return {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": _metadata(name, meta.get("namespace", "default"), first),
        "involvedObject": {
            "kind": involved["kind"],
            "namespace": meta.get("namespace"),
            "name": meta["name"],
            "uid": meta["uid"],
            "apiVersion": involved["apiVersion"],
            "resourceVersion": meta["resourceVersion"],
            **({"fieldPath": "spec.containers{app}"} if involved["kind"] == "Pod" else {}),
        },
        "reason": reason,
        "message": message,
        "source": {"component": component, "host": "node-1"},
        "firstTimestamp": rfc3339(first),
        "lastTimestamp": rfc3339(last),
        "count": count,
        "type": type,
        "eventTime": None,
        "reportingComponent": component,
        "reportingInstance": "node-1",
    }


def node(name: str, *, created: datetime, ready: bool = True, memory_pressure: bool = False):
    """A core/v1 Node with the usual conditions."""
    stamp = rfc3339(created)

    def condition(kind: str, status: bool, reason: str, message: str) -> dict[str, Any]:
        return {
            "type": kind,
            "status": "True" if status else "False",
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
            "reason": reason,
            "message": message,
        }

    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": _metadata(
            name,
            None,
            created,
            labels={"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
        ),
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
        "status": {
            "capacity": {"cpu": "4", "memory": "16318024Ki", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "16215624Ki", "pods": "110"},
            "conditions": [
                condition(
                    "MemoryPressure",
                    memory_pressure,
                    "KubeletHasInsufficientMemory"
                    if memory_pressure
                    else "KubeletHasSufficientMemory",
                    "kubelet has insufficient memory available"
                    if memory_pressure
                    else "kubelet has sufficient memory available",
                ),
                condition("DiskPressure", False, "KubeletHasNoDiskPressure", "no disk pressure"),
                condition("PIDPressure", False, "KubeletHasSufficientPID", "sufficient PID"),
                condition(
                    "Ready",
                    ready,
                    "KubeletReady" if ready else "KubeletNotReady",
                    "kubelet is posting ready status" if ready else "PLEG is not healthy",
                ),
            ],
            "addresses": [
                {"type": "InternalIP", "address": "192.0.2.10"},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "machineID": uuid.uuid4().hex,
                "systemUUID": str(uuid.uuid4()),
                "bootID": str(uuid.uuid4()),
                "kernelVersion": "6.1.0-27-amd64",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "containerRuntimeVersion": "containerd://1.7.24",
                "kubeletVersion": "v1.31.4",
                "kubeProxyVersion": "v1.31.4",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    }


# --------------------------------------------------------------------------------------------
# Selectors, as the API server parses them


class BadSelector(ValueError):
    pass


_LABEL_KEY = re.compile(r"^([a-z0-9A-Z.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _split_requirements(selector: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current.strip())
    return parts


def label_matches(selector: str, labels: Mapping[str, str]) -> bool:
    """Set-based and equality-based label selectors; BadSelector like the API server's 400."""
    for requirement in _split_requirements(selector):
        if match := re.fullmatch(r"(\S+)\s+(in|notin)\s+\(([^)]*)\)", requirement):
            key, op, values = match.group(1), match.group(2), match.group(3)
            options = {v.strip() for v in values.split(",") if v.strip()}
            _check_key(key)
            if (labels.get(key) in options) != (op == "in"):
                return False
            continue
        if match := re.fullmatch(r"([^=!\s]+)\s*(==|=|!=)\s*(\S*)", requirement):
            key, op, value = match.groups()
            _check_key(key)
            if not _LABEL_VALUE.match(value):
                raise BadSelector(f"invalid label value: {value!r}")
            if (labels.get(key) == value) != (op != "!="):
                return False
            continue
        negated = requirement.startswith("!")
        key = requirement.removeprefix("!").strip()
        _check_key(key)
        if (key in labels) == negated:
            return False
    return True


def _check_key(key: str) -> None:
    if not _LABEL_KEY.match(key):
        raise BadSelector(f"unable to parse requirement: invalid label key {key!r}")


_EVENT_FIELDS = {
    "involvedObject.name": ("involvedObject", "name"),
    "involvedObject.kind": ("involvedObject", "kind"),
    "involvedObject.namespace": ("involvedObject", "namespace"),
    "involvedObject.uid": ("involvedObject", "uid"),
    "reason": ("reason",),
    "type": ("type",),
    "metadata.name": ("metadata", "name"),
}


def field_matches(selector: str, obj: Mapping[str, Any]) -> bool:
    for requirement in (r.strip() for r in selector.split(",") if r.strip()):
        match = re.fullmatch(r"([^=!]+)(==|=|!=)(.*)", requirement)
        if match is None:
            raise BadSelector(f"invalid selector: '{selector}'; can't understand '{requirement}'")
        key, op, value = match.groups()
        if key not in _EVENT_FIELDS:
            raise BadSelector(f'field label not supported: "{key}"')
        actual: Any = obj
        for part in _EVENT_FIELDS[key]:
            actual = (actual or {}).get(part)
        if (str(actual or "") == value) != (op != "!="):
            return False
    return True


# --------------------------------------------------------------------------------------------
# The server


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


def _status(code: int, reason: str, message: str, **details: Any) -> web.Response:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return web.json_response(body, status=code)


def _not_found(resource: str, name: str, group: str = "") -> web.Response:
    details: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return _status(
        404, "NotFound", f'{resource}{"." + group if group else ""} "{name}" not found', **details
    )


def _list(kind: str, items: Sequence[Mapping[str, Any]], api_version: str) -> web.Response:
    bare = [{k: v for k, v in item.items() if k not in ("kind", "apiVersion")} for item in items]
    return web.json_response(
        {
            "kind": kind,
            "apiVersion": api_version,
            "metadata": {"resourceVersion": str(next(_resource_versions))},
            "items": bare,
        }
    )


class FakeKubeApi(ThreadedServer):
    """A Kubernetes API server look-alike answering from the objects a test adds."""

    name = "fake Kubernetes API"

    def __init__(self, token: str = DEFAULT_TOKEN) -> None:
        super().__init__()
        self.token = token
        self.outage = False
        self.requests: list[RecordedRequest] = []
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (kind, ns, name)
        self._events: list[dict[str, Any]] = []
        self._logs: dict[tuple[str, str, str, bool], list[tuple[datetime, str]]] = {}
        self._lock = threading.Lock()

    # -- content -----------------------------------------------------------------------------

    def add(self, *objects: Mapping[str, Any]) -> FakeKubeApi:
        with self._lock:
            for obj in objects:
                if obj["kind"] == "Event":
                    self._events.append(dict(obj))
                    continue
                meta = obj["metadata"]
                self._objects[(obj["kind"], meta.get("namespace", ""), meta["name"])] = dict(obj)
        return self

    def set_log(
        self,
        namespace: str,
        pod_name: str,
        container: str,
        lines: Sequence[tuple[datetime, str]],
        *,
        previous: bool = False,
    ) -> None:
        """The log of a container (`previous`: of the one that terminated before it)."""
        with self._lock:
            self._logs[(namespace, pod_name, container, previous)] = list(lines)

    def calls(self, path_part: str = "") -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if path_part in r.path]

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_kubeconfig(
        self,
        path: Path,
        *,
        context: str = CONTEXT,
        token: str | None = None,
        namespace: str = "default",
    ) -> Path:
        """A kubeconfig pointing at this server with a bearer token; returns `path`."""
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": self.base_url}}],
            "users": [{"name": f"{context}-reader", "user": {"token": token or self.token}}],
            "contexts": [
                {
                    "name": context,
                    "context": {
                        "cluster": context,
                        "user": f"{context}-reader",
                        "namespace": namespace,
                    },
                }
            ],
            "current-context": context,
            "preferences": {},
        }
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        return path

    async def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._gate])
        routes = [
            ("/version", self._version),
            ("/version/", self._version),  # what the generated client asks for
            ("/api/v1/namespaces/{ns}/pods", self._pods),
            ("/api/v1/namespaces/{ns}/pods/{name}", self._pod),
            ("/api/v1/namespaces/{ns}/pods/{name}/log", self._log),
            ("/api/v1/namespaces/{ns}/events", self._events_list),
            ("/apis/apps/v1/namespaces/{ns}/deployments/{name}", self._deployment),
            ("/apis/apps/v1/namespaces/{ns}/replicasets", self._replicasets),
            ("/apis/apps/v1/namespaces/{ns}/replicasets/{name}", self._replicaset),
            ("/apis/batch/v1/namespaces/{ns}/jobs/{name}", self._job),
            ("/api/v1/nodes/{name}", self._node),
        ]
        for path, handler in routes:
            app.router.add_route("*", path, handler)
        return app

    # -- plumbing ----------------------------------------------------------------------------

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    request.method, request.path, dict(request.query), dict(request.headers)
                )
            )
        if self.outage:
            return _status(
                503, "ServiceUnavailable", "the server is currently unable to handle the request"
            )
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _status(401, "Unauthorized", "Unauthorized")
        if request.method != "GET":
            return _status(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        try:
            return await handler(request)
        except BadSelector as exc:
            return _status(400, "BadRequest", str(exc))

    def _get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._objects.get((kind, namespace, name))

    def _all(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        with self._lock:
            return [
                o for (k, ns, _), o in sorted(self._objects.items()) if (k, ns) == (kind, namespace)
            ]

    # -- endpoints ---------------------------------------------------------------------------

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response(VERSION)

    async def _pods(self, request: web.Request) -> web.Response:
        pods = self._all("Pod", request.match_info["ns"])
        selector = request.query.get("labelSelector", "")
        if selector:
            pods = [p for p in pods if label_matches(selector, p["metadata"].get("labels", {}))]
        if limit := int(request.query.get("limit", "0") or 0):
            pods = pods[:limit]
        return _list("PodList", pods, "v1")

    async def _pod(self, request: web.Request) -> web.Response:
        found = self._get("Pod", request.match_info["ns"], request.match_info["name"])
        return web.json_response(found) if found else _not_found("pods", request.match_info["name"])

    async def _log(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["ns"], request.match_info["name"]
        found = self._get("Pod", namespace, name)
        if found is None:
            return _not_found("pods", name)
        containers = [c["name"] for c in found["spec"]["containers"]]
        container = request.query.get("container")
        if container is None:
            if len(containers) > 1:
                return _status(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {name}, choose one of: "
                    f"[{' '.join(containers)}]",
                )
            container = containers[0]
        if container not in containers:
            return _status(400, "BadRequest", f"container {container} is not valid for pod {name}")
        previous = request.query.get("previous") in ("true", "True", "1")
        with self._lock:
            lines = self._logs.get((namespace, name, container, previous))
        if lines is None and previous:
            return _status(
                400,
                "BadRequest",
                f'previous terminated container "{container}" in pod "{name}" not found',
            )
        lines = list(lines or [])
        if (tail := request.query.get("tailLines")) is not None:
            lines = lines[-int(tail) :] if int(tail) > 0 else []
        stamps = request.query.get("timestamps") in ("true", "True", "1")
        text = "".join(
            (f"{_micro(moment)} " if stamps else "") + line + "\n" for moment, line in lines
        )
        return web.Response(text=text, content_type="text/plain")

    async def _events_list(self, request: web.Request) -> web.Response:
        namespace = request.match_info["ns"]
        with self._lock:
            events = [e for e in self._events if e["metadata"]["namespace"] == namespace]
        selector = request.query.get("fieldSelector", "")
        if selector:
            events = [e for e in events if field_matches(selector, e)]
        return _list("EventList", events, "v1")

    async def _deployment(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        found = self._get("Deployment", request.match_info["ns"], name)
        return web.json_response(found) if found else _not_found("deployments", name, "apps")

    async def _replicasets(self, request: web.Request) -> web.Response:
        sets = self._all("ReplicaSet", request.match_info["ns"])
        selector = request.query.get("labelSelector", "")
        if selector:
            sets = [s for s in sets if label_matches(selector, s["metadata"].get("labels", {}))]
        return _list("ReplicaSetList", sets, "apps/v1")

    async def _replicaset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        found = self._get("ReplicaSet", request.match_info["ns"], name)
        return web.json_response(found) if found else _not_found("replicasets", name, "apps")

    async def _job(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        found = self._get("Job", request.match_info["ns"], name)
        return web.json_response(found) if found else _not_found("jobs", name, "batch")

    async def _node(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        found = self._get("Node", "", name)
        return web.json_response(found) if found else _not_found("nodes", name)


@pytest.fixture(name="kube_api")
def fixture_kube_api() -> Iterator[FakeKubeApi]:
    with FakeKubeApi() as server:
        yield server
