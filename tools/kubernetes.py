"""Read what a Kubernetes cluster knows about an alert: pods, events, rollouts, crashed logs.

Why `kubernetes_asyncio` and not the official (synchronous) `kubernetes` client: both are
generated from the same OpenAPI spec (same call names, same strict models), but the official
one blocks on urllib3 and would need `asyncio.to_thread` for every call. On our 2-core
machines the default thread pool has 6 workers, shared with the file log source; a
black-holed API server would hold them past any `asyncio.timeout`, because a thread cannot be
cancelled. `kubernetes_asyncio` runs on aiohttp, which the bot already depends on, so a call
is cancelled when its deadline passes and costs no thread.

Read-only by construction: only `get` and `list` calls are made (`read_*`, `list_*`, the pod
log, `/version`). A kubeconfig (with `context`) or the in-cluster service account; a missing
kubeconfig or an unknown context is refused when the configuration is loaded, naming it
(tools/kube_config.py). The
kubeconfig is never written back (`persist_config=False`), even when a token is refreshed.

Alert labels are attacker-influenced (anyone able to fire an alert chooses them), so label
values that are not valid Kubernetes label values render as "" in the `namespace` and
`selector` templates: a value cannot add requirements to a selector or leave the namespace.

Failures never raise out of `fetch_kubernetes`: they end up in `SourceReport.error`, and what
was read before the failure is still evidence.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import yaml

from firebreak.tools.breaker import Breaker
from firebreak.tools.config import InvestigationConfig
from firebreak.tools.errors import Category, CircuitOpenError, SourceError
from firebreak.tools.kube_config import (
    KINDS,
    NAME_RE,
    NAMESPACE_RE,
    KubernetesError,
    KubernetesSource,
    kube_context,
)
from firebreak.tools.kube_objects import (
    KubeFinding,
    crash_log_finding,
    describe_deployment,
    describe_node,
    describe_pod,
    describe_replicaset,
    event_findings,
    job_finding,
    log_findings,
    pod_finding,
    rollout_findings,
)
from firebreak.tools.models import MAX_ERROR_CHARS, AlertContext, SourceReport
from firebreak.tools.templating import QueryTemplateError, alert_window, render_query

if TYPE_CHECKING:
    from kubernetes_asyncio import client as k8s

__all__ = [
    "KubeClient",
    "KubeCluster",
    "KubeFinding",
    "check",
    "describe",
    "events",
    "fetch_kubernetes",
    "logs",
]

T = TypeVar("T")

_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
# The labels the Job controller puts on a Job's pods: every version sets the first, 1.27 and
# later the second as well.
JOB_POD_LABELS = ("job-name", "batch.kubernetes.io/job-name")


def _api_message(exc: Any) -> str:
    """The API server's `Status.message` when it sent one."""
    body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else exc.body
    try:
        message = yaml.safe_load(body).get("message") if body else None
    except (yaml.YAMLError, AttributeError):
        message = None
    return f"HTTP {exc.status}: {message or (body or exc.reason or '').strip()}"


class KubeClient:
    """One cluster's API, read-only, as an async context manager. Every call is bounded by
    `source.timeout_s` and raises only `KubernetesError`."""

    def __init__(self, source: KubernetesSource) -> None:
        self.source = source
        self.host = ""
        self._api: k8s.ApiClient | None = None

    async def __aenter__(self) -> KubeClient:
        # kubernetes_asyncio takes about 0.4 s to import: pay it when a cluster is read, not
        # when this module is (`firebreak check` imports it for every cluster it reaches).
        from kubernetes_asyncio import client as k8s
        from kubernetes_asyncio import config as k8s_config
        from kubernetes_asyncio.config.config_exception import ConfigException

        configuration = k8s.Configuration()
        try:
            if self.source.in_cluster:
                k8s_config.load_incluster_config(client_configuration=configuration)
            else:
                await k8s_config.load_kube_config(
                    config_file=self.source.kubeconfig,  # the loader expands `~`
                    context=self.source.context,
                    client_configuration=configuration,
                    persist_config=False,
                )
        except (ConfigException, OSError, ValueError, KeyError, TypeError) as exc:
            where = "in-cluster config" if self.source.in_cluster else self.source.kubeconfig
            raise KubernetesError(f"{where}: {exc}") from None
        self.host = configuration.host or ""
        self._api = k8s.ApiClient(configuration)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._api is not None:
            await self._api.close()
            self._api = None

    async def _call(self, what: str, make: Callable[[], Awaitable[T]]) -> T:
        from kubernetes_asyncio.client import ApiException

        timeout = self.source.timeout_s
        try:
            async with asyncio.timeout(timeout):
                return await make()
        except ApiException as exc:
            raise KubernetesError(f"{what}: {_api_message(exc)}", status=exc.status) from None
        except TimeoutError:
            raise KubernetesError(f"{what}: no answer within {timeout:g}s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise KubernetesError(f"{what}: cannot reach {self.host}: {exc}") from None
        except (ValueError, TypeError, AttributeError) as exc:  # strict models, odd answers
            raise KubernetesError(f"{what}: unexpected answer: {exc}") from None

    def _core(self) -> k8s.CoreV1Api:
        from kubernetes_asyncio.client import CoreV1Api

        assert self._api is not None, "use `async with KubeClient(source)`"
        return CoreV1Api(self._api)

    def _apps(self) -> k8s.AppsV1Api:
        from kubernetes_asyncio.client import AppsV1Api

        assert self._api is not None, "use `async with KubeClient(source)`"
        return AppsV1Api(self._api)

    def _batch(self) -> k8s.BatchV1Api:
        from kubernetes_asyncio.client import BatchV1Api

        assert self._api is not None, "use `async with KubeClient(source)`"
        return BatchV1Api(self._api)

    @property
    def _timeout(self) -> float:
        """Each request's own timeout, passed as `_request_timeout=`."""
        return self.source.timeout_s

    async def version(self) -> Any:
        from kubernetes_asyncio.client import VersionApi

        assert self._api is not None, "use `async with KubeClient(source)`"
        api = VersionApi(self._api)
        return await self._call("/version", lambda: api.get_code(_request_timeout=self._timeout))

    async def pod(self, namespace: str, name: str) -> Any:
        return await self._call(
            f"pod {namespace}/{name}",
            lambda: self._core().read_namespaced_pod(
                name, namespace, _request_timeout=self._timeout
            ),
        )

    async def pods(self, namespace: str, selector: str, limit: int) -> list[Any]:
        listing = await self._call(
            f"pods {selector!r} in {namespace}",
            lambda: self._core().list_namespaced_pod(
                namespace, label_selector=selector, limit=limit, _request_timeout=self._timeout
            ),
        )
        return list(listing.items or [])

    async def pod_log(
        self,
        namespace: str,
        name: str,
        *,
        container: str | None = None,
        previous: bool = False,
        tail_lines: int = 100,
        timestamps: bool = False,
    ) -> str:
        which = "previous log" if previous else "log"

        def read() -> Awaitable[str]:
            core, timeout = self._core(), self._timeout
            if container is None:  # the API picks the pod's only container
                return core.read_namespaced_pod_log(
                    name, namespace, previous=previous, tail_lines=tail_lines,
                    timestamps=timestamps, _request_timeout=timeout,
                )  # fmt: skip
            return core.read_namespaced_pod_log(
                name, namespace, container=container, previous=previous, tail_lines=tail_lines,
                timestamps=timestamps, _request_timeout=timeout,
            )  # fmt: skip

        return await self._call(
            f"{which} of {namespace}/{name}" + (f" container {container}" if container else ""),
            read,
        )

    async def events(self, namespace: str, involved: str | None = None) -> list[Any]:

        def list_events() -> Awaitable[Any]:
            core, timeout = self._core(), self._timeout
            if not involved:  # every event in the namespace
                return core.list_namespaced_event(namespace, _request_timeout=timeout)
            return core.list_namespaced_event(
                namespace,
                field_selector=f"involvedObject.name={involved}",
                _request_timeout=timeout,
            )

        listing = await self._call(
            f"events of {involved or 'everything'} in {namespace}", list_events
        )
        return list(listing.items or [])

    async def deployment(self, namespace: str, name: str) -> Any:
        return await self._call(
            f"deployment {namespace}/{name}",
            lambda: self._apps().read_namespaced_deployment(
                name, namespace, _request_timeout=self._timeout
            ),
        )

    async def replicaset(self, namespace: str, name: str) -> Any:
        return await self._call(
            f"replicaset {namespace}/{name}",
            lambda: self._apps().read_namespaced_replica_set(
                name, namespace, _request_timeout=self._timeout
            ),
        )

    async def replicasets(self, namespace: str, selector: str) -> list[Any]:
        listing = await self._call(
            f"replicasets {selector!r} in {namespace}",
            lambda: self._apps().list_namespaced_replica_set(
                namespace, label_selector=selector, _request_timeout=self._timeout
            ),
        )
        return list(listing.items or [])

    async def job(self, namespace: str, name: str) -> Any:
        return await self._call(
            f"job {namespace}/{name}",
            lambda: self._batch().read_namespaced_job(
                name, namespace, _request_timeout=self._timeout
            ),
        )

    async def node(self, name: str) -> Any:
        return await self._call(
            f"node {name}", lambda: self._core().read_node(name, _request_timeout=self._timeout)
        )


# --------------------------------------------------------------------------------------------
# `firebreak check`


async def check(source: KubernetesSource) -> str:
    """Reach the cluster (`GET /version`): one line for `firebreak check`; raises
    KubernetesError with the reason."""
    async with KubeClient(source) as kube:
        info = await kube.version()
    via = "in-cluster service account" if source.in_cluster else f"context {kube_context(source)}"
    return f"kubernetes {info.git_version} at {kube.host} ({via})"


# --------------------------------------------------------------------------------------------
# Evidence for an alert


def _safe_labels(alert: AlertContext) -> AlertContext:
    """The alert with label values that are not valid Kubernetes label values emptied."""
    labels = {k: (v if _LABEL_VALUE_RE.match(v) else "") for k, v in alert.labels.items()}
    return alert.model_copy(update={"labels": labels})


def _selector(match_labels: dict[str, str] | None, expressions: list[Any] | None) -> str:
    """A deployment's `spec.selector` as a label selector string."""
    parts = [f"{k}={v}" for k, v in sorted((match_labels or {}).items())]
    for expression in expressions or []:
        values = ",".join(expression.values or [])
        parts.append(
            {
                "In": f"{expression.key} in ({values})",
                "NotIn": f"{expression.key} notin ({values})",
                "Exists": expression.key,
                "DoesNotExist": f"!{expression.key}",
            }.get(expression.operator, expression.key)
        )
    return ",".join(parts)


def _unexpected(exc: Exception) -> str:
    if isinstance(exc, KubernetesError | QueryTemplateError):
        return str(exc)[:MAX_ERROR_CHARS]
    return f"unexpected: {type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]


class _Gathering:
    """What one fetch found so far, and what went wrong."""

    def __init__(self, source: KubernetesSource) -> None:
        self.source = source
        self.findings: list[KubeFinding] = []
        self.errors: list[str] = []

    def fail(self, exc: BaseException) -> None:
        """Record a failed call; cancellation and other BaseExceptions go on up."""
        if not isinstance(exc, Exception):
            raise exc
        message = _unexpected(exc)
        if message not in self.errors:
            self.errors.append(message)

    def note(self, text: str, obj: str = "", score: float = 1.0) -> None:
        self.findings.append(
            KubeFinding(source=self.source.name, kind="note", object=obj, text=text, score=score)
        )


async def _alert_pods(
    kube: KubeClient, namespace: str, alert: AlertContext, found: _Gathering
) -> list[Any]:
    source = found.source
    name = alert.labels.get("pod", "")
    if name and NAME_RE.match(name):
        try:
            return [await kube.pod(namespace, name)]
        except KubernetesError as exc:
            if exc.status != 404:
                raise
            found.note(
                f"pod {name} (named by the alert) no longer exists in {namespace}", f"pod/{name}"
            )
            return []
    if source.selector:
        selector = render_query(source.selector, alert)
        if selector and (pods := await kube.pods(namespace, selector, source.max_pods)):
            return pods
    return await _job_pods(kube, namespace, _job_named(alert), source.max_pods)


def _job_named(alert: AlertContext) -> str:
    """The Job an alert is about: kube-state-metrics' `job_name` (KubeJobFailed), else `job`.
    Most alerts' `job` names the Prometheus scrape job instead; no pod is labelled with it, so
    it costs a listing that finds nothing."""
    name = alert.labels.get("job_name") or alert.labels.get("job", "")
    return name if NAME_RE.match(name) else ""


async def _job_pods(kube: KubeClient, namespace: str, job: str, limit: int) -> list[Any]:
    """The newest pods of a Job, by the labels its controller sets: an alert about a Job
    names no pod, and a Job's pods match no service selector."""
    for label in JOB_POD_LABELS if job else ():
        if pods := await kube.pods(namespace, f"{label}={job}", _JOB_PODS):
            pods.sort(key=lambda pod: pod.metadata.creation_timestamp, reverse=True)
            return pods[:limit]
    return []


_JOB_PODS = 50  # a Job retried up to its backoff limit (6 by default) has one pod per try


@dataclass(frozen=True)
class _Ended:
    """A container whose last lines to read: the current one, terminated, or (`previous`)
    the one before its last restart. `state` is its `terminated` state."""

    pod: str
    container: str
    previous: bool
    state: Any


def _ended_containers(pod: Any) -> list[_Ended]:
    """Whose output explains a crash. A terminated container's own log: a failed Job's pod
    never restarts, so no previous container exists, and a container that ended (Completed,
    Error) wrote its last words there. After a restart, the previous container's log."""
    name = pod.metadata.name
    ended = []
    for container in pod.status.container_statuses or []:
        now = container.state.terminated if container.state else None
        if now is not None:
            ended.append(_Ended(name, container.name, False, now))
        last = container.last_state.terminated if container.last_state else None
        if container.restart_count and last is not None:
            ended.append(_Ended(name, container.name, True, last))
    return ended


async def _crash_logs(kube: KubeClient, namespace: str, pods: list[Any], found: _Gathering) -> None:
    """The last lines of each ended container, all read at once; a previous log that repeats
    the terminated one line for line is left out, so the budget is not spent twice on it."""
    wanted = [ended for pod in pods for ended in _ended_containers(pod)]
    results = await asyncio.gather(
        *(
            kube.pod_log(
                namespace, e.pod, container=e.container, previous=e.previous,
                tail_lines=found.source.log_lines,
            )
            for e in wanted
        ),
        return_exceptions=True,
    )  # fmt: skip
    current: dict[tuple[str, str], list[str]] = {}  # each container's terminated log's lines
    for ended, result in zip(wanted, results, strict=True):
        if isinstance(result, BaseException):
            if not (isinstance(result, KubernetesError) and result.status == 400):
                found.fail(result)  # 400: that container's log is gone, nothing to say
            continue
        lines = [line for line in result.splitlines() if line.strip()]
        if not ended.previous:
            current[(ended.pod, ended.container)] = lines
        elif lines == current.get((ended.pod, ended.container)):
            continue  # it crashed the same way before the restart: one finding says it
        finding = crash_log_finding(
            found.source.name, ended.pod, ended.container, result, ended.state,
            previous=ended.previous,
        )  # fmt: skip
        if finding is not None:
            found.findings.append(finding)


async def _owners(
    kube: KubeClient, namespace: str, pods: list[Any], alert: AlertContext, found: _Gathering
) -> tuple[list[str], list[str]]:
    """The ReplicaSets owning the pods and the Deployments owning those (or the alert's
    `deployment` label)."""
    sets = sorted(
        {
            owner.name
            for pod in pods
            for owner in pod.metadata.owner_references or []
            if owner.kind == "ReplicaSet"
        }
    )
    deployments = (
        {alert.labels["deployment"]} if NAME_RE.match(alert.labels.get("deployment", "")) else set()
    )
    results = await asyncio.gather(
        *(kube.replicaset(namespace, name) for name in sets), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            found.fail(result)
            continue
        for owner in result.metadata.owner_references or []:
            if owner.kind == "Deployment":
                deployments.add(owner.name)
    return sets, sorted(deployments)


def _jobs_of(pods: list[Any], alert: AlertContext) -> list[str]:
    """The Jobs owning the pods, and the one the alert's `job_name` names."""
    jobs = {
        owner.name
        for pod in pods
        for owner in pod.metadata.owner_references or []
        if owner.kind == "Job"
    }
    if NAME_RE.match(alert.labels.get("job_name", "")):
        jobs.add(alert.labels["job_name"])
    return sorted(jobs)


async def _job_state(
    kube: KubeClient, namespace: str, name: str, found: _Gathering
) -> list[KubeFinding]:
    """The Job's outcome: a failed one says why (`BackoffLimitExceeded`, `DeadlineExceeded`).
    A Job gone (deleted, or cleaned up after it finished) is said, not an error."""
    try:
        job = await kube.job(namespace, name)
    except KubernetesError as exc:
        if exc.status != 404:
            raise
        found.note(f"job {name} no longer exists in {namespace}", f"job/{name}")
        return []
    return [job_finding(kube.source.name, job)]


async def _rollouts(
    kube: KubeClient, namespace: str, name: str, window: tuple[Any, Any], alert: AlertContext
) -> list[KubeFinding]:
    deployment = await kube.deployment(namespace, name)
    selector = _selector(
        deployment.spec.selector.match_labels, deployment.spec.selector.match_expressions
    )
    history = await kube.replicasets(namespace, selector)
    start, end = window
    return rollout_findings(
        kube.source.name,
        deployment,
        history,
        start=start,
        end=end,
        starts_at=alert_window(alert, 0, 0)[0],
    )


async def fetch_kubernetes(
    source: KubernetesSource,
    alert: AlertContext,
    *,
    lookback_s: float = 1800,
    lookahead_s: float = 300,
) -> tuple[list[KubeFinding], SourceReport]:
    """Findings about `alert` from one cluster (unranked, without refs: `select_findings`
    ranks, caps, redacts and numbers them), with a report for the timeline.

    The alert's pods (`labels.pod`, else `selector`, else the pods of the Job named by
    `labels.job_name` or `labels.job`) with their state; the last lines of each container that
    ended: a terminated container's own log (a failed Job's pod never restarts) and the previous
    log of a restarted one; Warning events of the pods, their ReplicaSets, Deployments and Jobs
    inside the window, de-duplicated by reason; each Job's outcome; each Deployment's rollout
    history, a rollout inside the window being a "what changed" finding.
    """
    began = time.perf_counter()
    report = SourceReport(source=source.name, kind="kubernetes")
    found = _Gathering(source)
    window = alert_window(alert, lookback_s, lookahead_s)
    safe = _safe_labels(alert)
    try:
        namespace = render_query(source.namespace, safe)
    except QueryTemplateError as exc:
        return [], report.finish(0, [str(exc)], began)
    if not NAMESPACE_RE.match(namespace):
        problem = f"namespace template {source.namespace!r} gave {namespace!r}: not a namespace"
        return [], report.finish(0, [problem], began)
    try:
        async with KubeClient(source) as kube:
            await _gather(kube, namespace, safe, window, found)
    except Exception as exc:  # what was found before the failure is still evidence
        found.fail(exc)
    return found.findings, report.finish(len(found.findings), found.errors, began)


async def _gather(
    kube: KubeClient,
    namespace: str,
    alert: AlertContext,
    window: tuple[Any, Any],
    found: _Gathering,
) -> None:
    pods = await _alert_pods(kube, namespace, alert, found)
    found.findings.extend(pod_finding(found.source.name, pod) for pod in pods)
    (sets, deployments), _ = await asyncio.gather(
        _owners(kube, namespace, pods, alert, found), _crash_logs(kube, namespace, pods, found)
    )
    jobs = _jobs_of(pods, alert)
    names = [pod.metadata.name for pod in pods] + sets + deployments + jobs
    results = await asyncio.gather(
        *(kube.events(namespace, name) for name in names),
        *(_rollouts(kube, namespace, name, window, alert) for name in deployments),
        *(_job_state(kube, namespace, name, found) for name in jobs),
        return_exceptions=True,
    )
    events: list[Any] = []
    for result in results[: len(names)]:
        if isinstance(result, BaseException):
            found.fail(result)
        else:
            events.extend(result)
    start, end = window
    found.findings.extend(event_findings(found.source.name, events, start=start, end=end))
    for result in results[len(names) :]:
        if isinstance(result, BaseException):
            found.fail(result)
        else:
            found.findings.extend(result)


# --------------------------------------------------------------------------------------------
# Investigation tools: one question each, answered as findings (unnumbered)


async def events(kube: KubeClient, namespace: str, name: str | None = None) -> list[KubeFinding]:
    """The namespace's events (or one object's), by reason and object, Warning first."""
    found = await kube.events(namespace, name)
    return event_findings(kube.source.name, found, warning_only=False, by_object=True)


async def describe(kube: KubeClient, kind: str, namespace: str, name: str) -> list[KubeFinding]:
    """Status, conditions, restarts, last termination and images of one object."""
    resolved = KINDS.get(kind.lower())
    source = kube.source.name
    if resolved == "pod":
        pod = await kube.pod(namespace, name)
        text, score, latest = describe_pod(pod, detailed=True)
        return [
            KubeFinding(
                source=source, kind="pod", object=f"pod/{name}", text=text,
                timestamp=latest or pod.status.start_time, score=score,
            )
        ]  # fmt: skip
    if resolved == "deployment":
        deployment = await kube.deployment(namespace, name)
        selector = _selector(
            deployment.spec.selector.match_labels, deployment.spec.selector.match_expressions
        )
        history = [
            rs
            for rs in await kube.replicasets(namespace, selector)
            if any(o.uid == deployment.metadata.uid for o in rs.metadata.owner_references or [])
        ]
        history.sort(key=lambda rs: rs.metadata.creation_timestamp)
        text = describe_deployment(deployment, history)
        return [
            KubeFinding(source=source, kind="deployment", object=f"deployment/{name}", text=text)
        ]
    if resolved == "replicaset":
        replicaset = await kube.replicaset(namespace, name)
        return [
            KubeFinding(
                source=source, kind="replicaset", object=f"replicaset/{name}",
                text=describe_replicaset(replicaset),
                timestamp=replicaset.metadata.creation_timestamp,
            )
        ]  # fmt: skip
    if resolved == "job":
        job = await kube.job(namespace, name)
        return [job_finding(source, job)]
    if resolved == "node":
        node = await kube.node(name)
        return [
            KubeFinding(source=source, kind="node", object=f"node/{name}", text=describe_node(node))
        ]
    raise KubernetesError(
        f"kind {kind!r} is not supported (pod, deployment, replicaset, job, node)"
    )


async def logs(
    kube: KubeClient,
    namespace: str,
    pod: str,
    *,
    container: str | None = None,
    previous: bool = False,
    tail_lines: int = 100,
) -> list[KubeFinding]:
    """A container's last log lines: the current container's, also when it has terminated
    (a failed Job's pod, whose container never restarts); with `previous`, those of the
    container before the last restart."""
    text = await kube.pod_log(
        namespace,
        pod,
        container=container,
        previous=previous,
        tail_lines=tail_lines,
        timestamps=True,
    )
    return log_findings(kube.source.name, pod, container or "", text)


# --------------------------------------------------------------------------------------------
# The cluster as a source (tools/sources.py `ClusterSource`)


class _NothingRead(SourceError):
    """The cluster gave nothing and said why: a failure of the cluster, for its breaker."""

    def __init__(self, report: SourceReport) -> None:
        super().__init__(report.error or "nothing read", category=Category.TRANSIENT)
        self.report = report


class KubeCluster:
    """One configured cluster: the evidence read for an alert, and the investigation tools'
    questions on a client opened at the first question and kept until `aclose()`.

    `fetch` honours the cluster's breaker: an open one is reported at once without a request,
    and a read that got nothing at all because the cluster failed counts against it (a read
    that found something, with some calls failing, does not). The tool questions are single
    calls that their caller guards."""

    def __init__(self, config: KubernetesSource, *, breaker: Breaker | None = None) -> None:
        self.config = config
        self.name = config.name
        self.where = ""  # its check names the cluster itself
        self._breaker = breaker
        self._client: KubeClient | None = None

    async def fetch(
        self, alert: AlertContext, investigation: InvestigationConfig
    ) -> tuple[list[KubeFinding], SourceReport]:
        async def read() -> tuple[list[KubeFinding], SourceReport]:
            found, report = await fetch_kubernetes(
                self.config,
                alert,
                lookback_s=investigation.lookback_s,
                lookahead_s=investigation.lookahead_s,
            )
            if report.error and not found:
                raise _NothingRead(report)
            return found, report

        began = time.perf_counter()
        try:
            return await (read() if self._breaker is None else self._breaker.call(read))
        except _NothingRead as failed:
            return [], failed.report
        except CircuitOpenError as exc:
            report = SourceReport(source=self.name, kind="kubernetes")
            return [], report.finish(0, [str(exc)], began)

    async def events(self, namespace: str, name: str | None = None) -> list[KubeFinding]:
        return await events(await self._opened(), namespace, name)

    async def describe(self, kind: str, namespace: str, name: str) -> list[KubeFinding]:
        return await describe(await self._opened(), kind, namespace, name)

    async def logs(
        self,
        namespace: str,
        pod: str,
        *,
        container: str | None = None,
        previous: bool = False,
        tail_lines: int = 100,
    ) -> list[KubeFinding]:
        return await logs(
            await self._opened(),
            namespace,
            pod,
            container=container,
            previous=previous,
            tail_lines=tail_lines,
        )

    async def check(self) -> str:
        return await check(self.config)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.__aexit__(None, None, None)

    async def _opened(self) -> KubeClient:
        if self._client is None:
            self._client = await KubeClient(self.config).__aenter__()
        return self._client
