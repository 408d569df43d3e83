"""Kubernetes objects as evidence: what a pod, an event, a rollout says, in one ranked line each.

Why a module of its own: `tools/kubernetes.py` talks to the cluster; this one only reads the
client's model objects (attribute access, no network), so it can be tested and reused by the
fetcher and the investigation tools alike.

A `KubeFinding` (defined in tools/models.py, beside `Evidence`) is the Kubernetes sibling of
`LogLine`: a short text with a time, a count and a score, cited as `K1…`. Scores use the same
weights as log lines in `tools.evidence` (an error 3, a severe one 4, a change 3, close to the
alert start up to 1.5 more), so a rollout minutes before the alert ranks like the deploy line
it is, and an `OOMKilled` pod like a fatal error. A crashed container's last lines with errors
in them score 4.5: the crash in its own words, above the pod state and events that report it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from firebreak.tools.evidence import format_finding, is_error
from firebreak.tools.models import KubeFinding

__all__ = [
    "MAX_FINDING_CHARS",
    "REVISION_ANNOTATION",
    "KubeFinding",
    "crash_log_finding",
    "describe_deployment",
    "describe_job",
    "describe_node",
    "describe_pod",
    "describe_replicaset",
    "event_findings",
    "format_finding",
    "job_finding",
    "log_findings",
    "pod_finding",
    "revision",
    "rollout_findings",
    "select_findings",
]

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
MAX_FINDING_CHARS = 1500  # a crashed container's last lines are the longest finding
_LOG_KINDS = frozenset({"previous_log", "log"})  # a header line, then a container's lines
_MIN_TAIL = 80  # a log's end shorter than this says too little to be worth a ref
_NEAR = timedelta(minutes=5)
_SEVERE_REASONS = ("oom", "kill", "backoff", "evict", "failed", "unhealthy")
_HISTORY = 5  # revisions shown in a deployment's history


def _ts(value: datetime | None) -> str:
    return "?" if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cap(text: str, limit: int = MAX_FINDING_CHARS, *, keep_end: bool = False) -> str:
    if len(text) <= limit:
        return text
    return "…" + text[-(limit - 1) :] if keep_end else text[: limit - 1] + "…"


def _cap_log(text: str, limit: int = MAX_FINDING_CHARS) -> str:
    """A log finding cut to `limit` from the start of its lines: the header saying whose log
    it is stays, and so does the end, where a crashed container wrote why it stopped."""
    head, _, body = text.partition("\n")
    if len(text) <= limit or not body:
        return _cap(text, limit, keep_end=True)
    return f"{head}\n{_cap(body, max(limit - len(head) - 1, 2), keep_end=True)}"


def select_findings(
    findings: Iterable[KubeFinding],
    budget_chars: int,
    *,
    redact: Callable[[str], str] | None = None,
    first: int = 1,
) -> list[KubeFinding]:
    """Redact, keep the best-scoring findings within `budget_chars`, show them in time order
    (untimed last) and number them `K<first>…`. A container's log that does not fit whole is
    cut to the end that does: its last lines are the crash."""
    scrubbed = [
        f.model_copy(update={"text": _capped(f, redact(f.text)), "object": redact(f.object)})
        if redact is not None
        else f.model_copy(update={"text": _capped(f, f.text)})
        for f in findings
    ]
    order = sorted(enumerate(scrubbed), key=lambda item: (-item[1].score, _when(item[1])))
    kept: list[tuple[int, KubeFinding]] = []
    spent = 0
    for index, finding in order:
        cost = len(format_finding(finding)) + 1
        if spent + cost > budget_chars:
            fitted = _fitted(finding, budget_chars - spent)
            if fitted is None:
                continue
            finding, cost = fitted, len(format_finding(fitted)) + 1
        kept.append((index, finding))
        spent += cost
    kept.sort(key=lambda item: (_when(item[1]), item[0]))
    return [f.model_copy(update={"ref": f"K{n}"}) for n, (_, f) in enumerate(kept, start=first)]


def _capped(finding: KubeFinding, text: str) -> str:
    return _cap_log(text) if finding.kind in _LOG_KINDS else _cap(text)


def _fitted(finding: KubeFinding, room: int) -> KubeFinding | None:
    """A log finding cut to cost exactly `room` characters, or None (another kind, or too
    little of its end would be left)."""
    overhead = len(format_finding(finding)) - len(finding.text) + 1
    head = finding.text.partition("\n")[0]
    if finding.kind not in _LOG_KINDS or room - overhead - len(head) - 2 < _MIN_TAIL:
        return None
    return finding.model_copy(update={"text": _cap_log(finding.text, room - overhead)})


_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


def _when(finding: KubeFinding) -> datetime:
    return _aware(finding.timestamp) or _FAR_FUTURE


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _nearness(moment: datetime | None, anchor: datetime | None) -> float:
    """Up to 1.5 for a moment within five minutes of the alert start, as for log lines."""
    moment, anchor = _aware(moment), _aware(anchor)
    if moment is None or anchor is None:
        return 0.0
    distance = abs((moment - anchor).total_seconds())
    return 1.5 * (1 - distance / _NEAR.total_seconds()) if distance < _NEAR.total_seconds() else 0


# --------------------------------------------------------------------------------------------
# Pods


def _get(obj: Any, *path: str) -> Any:
    for name in path:
        if obj is None:
            return None
        obj = getattr(obj, name, None)
    return obj


def _container_line(status: Any) -> tuple[str, float, datetime | None]:
    """One container's state, its score as a log line saying it would get (a severe error 4,
    an error 3), and when it last terminated (now, or before its last restart)."""
    parts = [f"container {status.name}"]
    score = 0.0
    finished = None
    if waiting := _get(status, "state", "waiting"):
        parts.append(f"waiting {waiting.reason or '?'}")
        score = 3.0 if waiting.reason not in (None, "ContainerCreating", "PodInitializing") else 0
    elif terminated := _get(status, "state", "terminated"):
        parts.append(f"terminated {terminated.reason or '?'} (exit code {terminated.exit_code})")
        score = 3.0 if terminated.exit_code else 0.0
        finished = terminated.finished_at
    elif _get(status, "state", "running"):
        parts.append("running")
    if status.restart_count:
        parts.append(f"{status.restart_count} restarts")
        score = max(score, 2.0)
    if last := _get(status, "last_state", "terminated"):
        finished = finished or last.finished_at
        parts.append(
            f"last terminated {last.reason or '?'} (exit code {last.exit_code}) "
            f"at {_ts(last.finished_at)}"
        )
        oom = (last.reason or "") == "OOMKilled" or last.exit_code == 137
        score = max(score, 4.0 if oom else (3.0 if last.exit_code else 0.0))
    parts.append(f"image {status.image}")
    return ", ".join(parts), score, finished


def describe_pod(pod: Any, *, detailed: bool = False) -> tuple[str, float, datetime | None]:
    """Phase, ready, restarts and each container's last termination; with `detailed`, also
    the node, conditions and start time. Returns (text, score, latest termination)."""
    status = pod.status
    containers = list(status.container_statuses or []) + list(status.init_container_statuses or [])
    ready = sum(1 for c in containers if c.ready)
    restarts = sum(c.restart_count or 0 for c in containers)
    head = f"{status.phase or '?'}, ready {ready}/{len(containers)}, {restarts} restarts"
    if status.reason:
        head += f", {status.reason}: {status.message or ''}".rstrip(": ")
    unwell = ready < len(containers) or status.phase in ("Failed", "Pending", "Unknown")
    score = 2.0 if unwell else 1.0  # a healthy pod is context, not a clue
    lines, latest = [head], None
    for container in containers:
        text, points, finished = _container_line(container)
        lines.append(text)
        score = max(score, points)
        if finished is not None and (latest is None or finished > latest):
            latest = finished
    if restarts > 1:  # like a repeated log line
        score += 0.5 * math.log10(restarts)
    if detailed:
        node = pod.spec.node_name if pod.spec else None
        lines.append(f"node {node or '(not scheduled)'}, started {_ts(status.start_time)}")
        for condition in status.conditions or []:
            reason = f" {condition.reason}" if condition.reason else ""
            lines.append(f"condition {condition.type}={condition.status}{reason}")
        owners = [f"{o.kind}/{o.name}" for o in pod.metadata.owner_references or []]
        if owners:
            lines.append("owned by " + ", ".join(owners))
    return "; ".join(lines), round(score, 3), latest


def pod_finding(source: str, pod: Any) -> KubeFinding:
    text, score, latest = describe_pod(pod)
    return KubeFinding(
        source=source,
        kind="pod",
        object=f"pod/{pod.metadata.name}",
        text=text,
        timestamp=latest or pod.status.start_time or pod.metadata.creation_timestamp,
        score=score,
    )


def crash_log_finding(
    source: str, pod: str, container: str, log: str, ended: Any, *, previous: bool
) -> KubeFinding | None:
    """The last lines a container wrote before it ended (`ended`: its `terminated` state).
    `previous`: the container before a restart (kind `previous_log`); else the current one,
    which has terminated and may never restart, like a failed Job's (kind `log`: a pod that
    does not restart has no previous container). With error lines it outranks the pod state
    and the events, which only report the crash; a clean exit's output is context."""
    lines = [line for line in log.splitlines() if line.strip()]
    if not lines:
        return None
    which = "previous" if previous else "terminated"
    how = f"{ended.reason or '?'}, exit code {ended.exit_code}"
    head = f"last {len(lines)} lines of the {which} {container} container ({how}):"
    if any(is_error(line) for line in lines):
        score = 4.5
    else:
        score = 2.0 if previous or ended.exit_code else 1.0
    return KubeFinding(
        source=source,
        kind="previous_log" if previous else "log",
        object=f"pod/{pod}",
        text=_cap_log(head + "\n" + "\n".join(lines)),
        timestamp=ended.finished_at,
        score=score,
    )


def log_findings(source: str, pod: str, container: str, log: str) -> list[KubeFinding]:
    """A container's log (asked for with `timestamps=true`), one finding per line."""
    found = []
    for line in log.splitlines():
        if not line.strip():
            continue
        stamp, _, text = line.partition(" ")
        try:
            moment: datetime | None = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            moment, text = None, line
        found.append(
            KubeFinding(
                source=source,
                kind="log",
                object=f"pod/{pod}/{container}" if container else f"pod/{pod}",
                text=_cap(text),
                timestamp=moment,
                score=3.0 if is_error(text) else 0.0,
            )
        )
    return found


# --------------------------------------------------------------------------------------------
# Events


def _event_time(event: Any) -> tuple[datetime | None, datetime | None]:
    first = event.first_timestamp or event.event_time or event.metadata.creation_timestamp
    last = event.last_timestamp or _get(event, "series", "last_observed_time") or first
    return first, last


def event_findings(
    source: str,
    events: Iterable[Any],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    warning_only: bool = True,
    by_object: bool = False,
) -> list[KubeFinding]:
    """Events de-duplicated by reason (and by object with `by_object`), counts summed, the
    latest message kept; Warning first, then newest first. With `start`/`end`, only events
    seen inside the window."""
    groups: dict[tuple[str, ...], dict[str, Any]] = {}
    for event in events:
        kind = event.type or "Normal"
        if warning_only and kind != "Warning":
            continue
        first, last = _event_time(event)
        if start is not None and (seen := _aware(last)) is not None and seen < start:
            continue
        if end is not None and (seen := _aware(first)) is not None and seen > end:
            continue
        involved = event.involved_object
        obj = f"{(involved.kind or '?').lower()}/{involved.name}"
        key = (kind, event.reason or "?", obj) if by_object else (kind, event.reason or "?")
        group = groups.setdefault(
            key, {"count": 0, "objects": [], "first": first, "last": last, "message": ""}
        )
        group["count"] += event.count or 1
        if obj not in group["objects"]:
            group["objects"].append(obj)
        if first is not None and (group["first"] is None or first < group["first"]):
            group["first"] = first
        if last is not None and (group["last"] is None or last >= group["last"]):
            group["last"], group["message"] = last, event.message or ""
        elif not group["message"]:
            group["message"] = event.message or ""
    found = []
    newest_first = sorted(groups.items(), key=lambda item: -_epoch(item[1]["last"]))
    warning_first = sorted(newest_first, key=lambda item: item[0][0] != "Warning")
    for (kind, reason, *_), group in warning_first:
        objects = group["objects"]
        shown = ", ".join(objects[:3]) + (
            f" and {len(objects) - 3} more" if len(objects) > 3 else ""
        )
        severe = any(word in reason.lower() for word in _SEVERE_REASONS)
        score = (3.0 if kind == "Warning" else 0.5) + (1.0 if severe else 0.0)
        score += 0.5 * math.log10(group["count"]) if group["count"] > 1 else 0.0
        found.append(
            KubeFinding(
                source=source,
                kind="event",
                object=objects[0] if len(objects) == 1 else "",
                text=f"{kind} {reason}"
                + ("" if len(objects) == 1 else f" on {shown}")
                + f", last at {_ts(group['last'])}: {group['message']}",
                timestamp=group["first"],
                count=group["count"],
                score=round(score, 3),
            )
        )
    return found


def _epoch(moment: datetime | None) -> float:
    aware = _aware(moment)
    return aware.timestamp() if aware is not None else 0.0


# --------------------------------------------------------------------------------------------
# Deployments and their rollout history


def revision(obj: Any) -> int:
    """The `deployment.kubernetes.io/revision` annotation as a number (0 when absent)."""
    value = (obj.metadata.annotations or {}).get(REVISION_ANNOTATION, "0")
    try:
        return int(value)
    except ValueError:
        return 0


def _images(template: Any) -> str:
    containers = _get(template, "spec", "containers") or []
    return ", ".join(f"{c.name}={c.image}" for c in containers) or "no containers"


def _owned_by(replicaset: Any, deployment: Any) -> bool:
    owners = replicaset.metadata.owner_references or []
    return any(o.uid == deployment.metadata.uid for o in owners)


def rollout_findings(
    source: str,
    deployment: Any,
    replicasets: Sequence[Any],
    *,
    start: datetime,
    end: datetime,
    starts_at: datetime,
) -> list[KubeFinding]:
    """The deployment's state with its last revisions, and one "what changed" finding per
    ReplicaSet created inside the window (a rollout), scored like a deploy log line."""
    name = deployment.metadata.name
    history = sorted((rs for rs in replicasets if _owned_by(rs, deployment)), key=revision)
    found = [
        KubeFinding(
            source=source,
            kind="deployment",
            object=f"deployment/{name}",
            text=describe_deployment(deployment, history),
            timestamp=history[-1].metadata.creation_timestamp if history else None,
            score=2.0 if _unavailable(deployment) else 1.0,
        )
    ]
    for index, replicaset in enumerate(history):
        created = _aware(replicaset.metadata.creation_timestamp)
        if created is None or not start <= created <= end:
            continue
        text = (
            f"rollout: revision {revision(replicaset)} (replicaset {replicaset.metadata.name}) "
            f"created, images {_images(replicaset.spec.template)}"
        )
        if index > 0:
            before = history[index - 1]
            text += f"; revision {revision(before)} ran {_images(before.spec.template)}"
        lead = (_aware(starts_at) or created) - created
        new = 1.5 if timedelta(0) <= lead <= 2 * _NEAR else 0.0  # shortly before the alert
        found.append(
            KubeFinding(
                source=source,
                kind="rollout",
                object=f"deployment/{name}",
                text=text,
                timestamp=created,
                score=round(3.0 + _nearness(created, starts_at) + new, 3),
            )
        )
    return found


def _unavailable(deployment: Any) -> bool:
    status = deployment.status
    wanted = deployment.spec.replicas if deployment.spec.replicas is not None else 1
    return (status.available_replicas or 0) < wanted


def _conditions(conditions: Iterable[Any] | None) -> list[str]:
    out = []
    for condition in conditions or []:
        reason = f" ({condition.reason})" if condition.reason else ""
        out.append(f"{condition.type}={condition.status}{reason}")
    return out


def describe_deployment(deployment: Any, history: Sequence[Any] = ()) -> str:
    status, spec = deployment.status, deployment.spec
    parts = [
        f"{spec.replicas if spec.replicas is not None else 1} desired, "
        f"{status.ready_replicas or 0} ready, {status.updated_replicas or 0} updated, "
        f"{status.available_replicas or 0} available",
        f"revision {revision(deployment)}",
        f"images {_images(spec.template)}",
    ]
    conditions = _conditions(status.conditions)
    if conditions:
        parts.append("conditions " + ", ".join(conditions))
    if history:
        revisions = [
            f"{revision(rs)} at {_ts(rs.metadata.creation_timestamp)} {_images(rs.spec.template)}"
            for rs in list(history)[-_HISTORY:][::-1]
        ]
        parts.append("history: " + "; ".join(revisions))
    return "; ".join(parts)


def describe_replicaset(replicaset: Any) -> str:
    status = replicaset.status
    owners = [f"{o.kind}/{o.name}" for o in replicaset.metadata.owner_references or []]
    return "; ".join(
        [
            f"revision {revision(replicaset)}, "
            f"created {_ts(replicaset.metadata.creation_timestamp)}",
            f"{replicaset.spec.replicas or 0} desired, {status.ready_replicas or 0} ready, "
            f"{status.available_replicas or 0} available",
            f"images {_images(replicaset.spec.template)}",
            *(["owned by " + ", ".join(owners)] if owners else []),
            *(["conditions " + ", ".join(c)] if (c := _conditions(status.conditions)) else []),
        ]
    )


# --------------------------------------------------------------------------------------------
# Jobs


def _job_outcome(job: Any) -> Any:
    """The condition that ended the Job (`Failed`, `Complete`), or None while it runs."""
    for condition in job.status.conditions or []:
        if condition.type in ("Failed", "Complete") and condition.status == "True":
            return condition
    return None


def describe_job(job: Any) -> str:
    """How the Job ended and why (`Failed` with `BackoffLimitExceeded` or `DeadlineExceeded`
    and the controller's message), its pod counts against its limits, and its images."""
    status, spec = job.status, job.spec
    outcome = _job_outcome(job)
    if outcome is None:
        state = "suspended" if spec.suspend else "running"
    else:
        state = f"{outcome.type} {outcome.reason or ''}: {outcome.message or ''}".rstrip(": ")
    limit = spec.backoff_limit if spec.backoff_limit is not None else 6
    finished = f", completed {_ts(status.completion_time)}" if status.completion_time else ""
    owners = [f"{o.kind}/{o.name}" for o in job.metadata.owner_references or []]
    return "; ".join(
        [
            state,
            f"{status.active or 0} active, {status.succeeded or 0} succeeded, "
            f"{status.failed or 0} failed of {spec.completions or 1} completions, "
            f"backoff limit {limit}",
            f"started {_ts(status.start_time)}{finished}",
            f"images {_images(spec.template)}",
            *(["owned by " + ", ".join(owners)] if owners else []),
            *(["conditions " + ", ".join(c)] if (c := _conditions(status.conditions)) else []),
        ]
    )


def job_finding(source: str, job: Any) -> KubeFinding:
    """The Job's state, timed when it ended; a failed Job scores like an error line."""
    outcome = _job_outcome(job)
    failed = outcome is not None and outcome.type == "Failed"
    return KubeFinding(
        source=source,
        kind="job",
        object=f"job/{job.metadata.name}",
        text=describe_job(job),
        timestamp=(outcome.last_transition_time if outcome else None) or job.status.start_time,
        score=3.0 if failed else 1.0,
    )


def describe_node(node: Any) -> str:
    status = node.status
    info = status.node_info
    kubelet, image, runtime = (
        (info.kubelet_version, info.os_image, info.container_runtime_version) if info else "???"
    )
    parts = [
        f"kubelet {kubelet}, {image}, runtime {runtime}",
        "conditions " + ", ".join(_conditions(status.conditions)),
        "allocatable "
        + ", ".join(f"{k}={v}" for k, v in sorted((status.allocatable or {}).items())),
    ]
    if node.spec and node.spec.unschedulable:
        parts.append("unschedulable (cordoned)")
    taints = (
        [f"{t.key}={t.value or ''}:{t.effect}" for t in (node.spec.taints or [])]
        if node.spec
        else []
    )
    if taints:
        parts.append("taints " + ", ".join(taints))
    return "; ".join(parts)
