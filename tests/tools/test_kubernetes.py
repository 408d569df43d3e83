"""The Kubernetes source with the real client against the API stand-in, over real sockets."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from firebreak.config import ConfigError, load_config
from firebreak.tools import kubernetes
from firebreak.tools.evidence import build_evidence, is_change, is_error
from firebreak.tools.kube_config import KubernetesError, KubernetesSource
from firebreak.tools.kube_objects import crash_log_finding, format_finding, select_findings
from firebreak.tools.kubernetes import KubeClient
from firebreak.tools.models import AlertContext, LogLine
from firebreak.tools.redact import Redactor
from tests.fakes.k8s_api import (
    CONTEXT,
    FakeKubeApi,
    Terminated,
    deployment,
    event,
    job,
    node,
    pod,
    replicaset,
)

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
NS = "shop"


@dataclass
class Cluster:
    api: FakeKubeApi
    kubeconfig: Path
    crashing: str  # the OOMKilled pod's name
    healthy: str

    def source(self, **overrides: Any) -> KubernetesSource:
        fields: dict[str, Any] = {
            "name": "prod",
            "kubeconfig": str(self.kubeconfig),
            "selector": "app={{ labels.service }}",
        }
        return KubernetesSource(**(fields | overrides))


def alert(**labels: str) -> AlertContext:
    return AlertContext(labels={"namespace": NS, "service": "checkout", **labels}, starts_at=T0)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """checkout rolled out 1.4.2 twelve minutes before the alert; one of its pods is being
    OOMKilled since, the other is fine."""
    with FakeKubeApi() as api:
        dep = deployment(
            "checkout", NS, created=T0 - timedelta(days=3), images={"app": "reg/checkout:1.4.2"},
            revision=2, ready=1,
        )  # fmt: skip
        old = replicaset(
            dep, revision=1, created=T0 - timedelta(days=3), images={"app": "reg/checkout:1.4.1"}
        )
        new = replicaset(
            dep, revision=2, created=T0 - timedelta(minutes=12),
            images={"app": "reg/checkout:1.4.2"}, replicas=2,
        )  # fmt: skip
        crashing = pod(
            f"{new['metadata']['name']}-abcde", NS, created=T0 - timedelta(minutes=11),
            owner=new, ready=False, restarts=3, waiting_reason="CrashLoopBackOff",
            last_terminated=Terminated("OOMKilled", 137, finished=T0 - timedelta(minutes=1)),
        )  # fmt: skip
        healthy = pod(
            f"{new['metadata']['name']}-fghij", NS, created=T0 - timedelta(minutes=11), owner=new
        )
        elsewhere = pod("billing-1", NS, created=T0, labels={"app": "billing"})
        api.add(dep, old, new, crashing, healthy, elsewhere, node("node-1", created=T0))
        api.add(
            event(crashing, "BackOff", "Back-off restarting failed container app",
                  first=T0 - timedelta(minutes=8), last=T0, count=14),
            event(healthy, "BackOff", "Back-off restarting failed container app",
                  first=T0 - timedelta(minutes=5), last=T0 - timedelta(minutes=2), count=6),
            event(crashing, "Unhealthy", "Readiness probe failed: HTTP probe failed with 503",
                  first=T0 - timedelta(minutes=9)),
            event(crashing, "Pulled", 'Successfully pulled image "reg/checkout:1.4.2"',
                  first=T0 - timedelta(minutes=11), type="Normal"),
            event(dep, "FailedCreate", "quota exceeded: old news",
                  first=T0 - timedelta(hours=3), last=T0 - timedelta(hours=2)),
            event(dep, "ScalingReplicaSet", "Scaled up replica set to 2",
                  first=T0 - timedelta(minutes=12), type="Normal",
                  component="deployment-controller"),
        )  # fmt: skip
        api.set_log(
            NS,
            crashing["metadata"]["name"],
            "app",
            [
                (T0 - timedelta(minutes=1, seconds=3), "INFO loading catalogue into cache"),
                (
                    T0 - timedelta(minutes=1, seconds=1),
                    "java.lang.OutOfMemoryError: Java heap space",
                ),
                (T0 - timedelta(minutes=1), "\tat com.shop.Catalogue.load(Catalogue.java:42)"),
            ],
            previous=True,
        )
        api.set_log(NS, crashing["metadata"]["name"], "app", [(T0, "INFO starting checkout")])
        yield Cluster(
            api,
            api.write_kubeconfig(tmp_path / "kubeconfig"),
            crashing["metadata"]["name"],
            healthy["metadata"]["name"],
        )


def by_kind(findings: list[kubernetes.KubeFinding], kind: str) -> list[kubernetes.KubeFinding]:
    return [f for f in findings if f.kind == kind]


SYNTAX_ERROR = '/bin/sh: syntax error: unexpected "fi"'
JOB_POD = "db-migrate-x7k2p"


def add_failed_job(api: FakeKubeApi, *, drop_pod_label: str | None = None) -> None:
    """db-migrate ran its script once (restartPolicy Never, backoffLimit 0) and the shell could
    not parse it: exit code 2, no restart, so its pod has no previous container."""
    migrate = job(
        "db-migrate", NS, created=T0 - timedelta(minutes=4), images={"migrate": "busybox:1.36"}
    )
    runner = pod(
        JOB_POD, NS, created=T0 - timedelta(minutes=4), owner=migrate, phase="Failed",
        terminated=Terminated("Error", 2, finished=T0 - timedelta(minutes=3)),
    )  # fmt: skip
    if drop_pod_label:
        del runner["metadata"]["labels"][drop_pod_label]
    api.add(
        migrate,
        runner,
        event(migrate, "BackoffLimitExceeded", "Job has reached the specified backoff limit",
              first=T0 - timedelta(minutes=3), component="job-controller"),
    )  # fmt: skip
    api.set_log(
        NS,
        JOB_POD,
        "migrate",
        [
            (T0 - timedelta(minutes=4), "running migrations for shop"),
            (T0 - timedelta(minutes=3, seconds=1), "applying 0042_orders_index.sql"),
            (T0 - timedelta(minutes=3), SYNTAX_ERROR),
        ],
    )


def job_alert(**labels: str) -> AlertContext:
    """kube-state-metrics' KubeJobFailed: `job` names the scrape job, `job_name` the Job."""
    return AlertContext(
        labels={"alertname": "KubeJobFailed", "namespace": NS, "job": "kube-state-metrics"}
        | labels,
        starts_at=T0,
    )


def pod_listings(api: FakeKubeApi) -> list[str]:
    """The label selectors pods were listed with, in order."""
    return [r.query["labelSelector"] for r in api.calls("/pods") if "labelSelector" in r.query]


def log_reads(api: FakeKubeApi, pod_name: str) -> list[bool]:
    """Each log read of the pod: True when it asked for the previous container."""
    return [
        r.query.get("previous", "false").lower() == "true"
        for r in api.calls(f"/pods/{pod_name}/log")
    ]


async def test_pods_events_previous_logs_and_the_rollout(cluster: Cluster) -> None:
    findings, report = await kubernetes.fetch_kubernetes(cluster.source(), alert())

    assert report.error is None, report.error
    assert report.kind == "kubernetes" and report.items == len(findings)
    pods = {f.object: f for f in by_kind(findings, "pod")}
    assert set(pods) == {f"pod/{cluster.crashing}", f"pod/{cluster.healthy}"}  # not billing
    crashed = pods[f"pod/{cluster.crashing}"]
    assert "Running, ready 0/1, 3 restarts" in crashed.text
    assert "last terminated OOMKilled (exit code 137)" in crashed.text
    assert "waiting CrashLoopBackOff" in crashed.text
    assert crashed.timestamp == T0 - timedelta(minutes=1)
    assert crashed.score > pods[f"pod/{cluster.healthy}"].score

    (previous,) = by_kind(findings, "previous_log")
    assert previous.object == f"pod/{cluster.crashing}"
    assert "OutOfMemoryError: Java heap space" in previous.text
    assert "Catalogue.java:42" in previous.text
    assert "starting checkout" not in previous.text  # the current container's log is not it

    events = {f.text.split(",")[0]: f for f in by_kind(findings, "event")}
    assert set(events) == {
        f"Warning BackOff on pod/{cluster.crashing}",
        "Warning Unhealthy",
    }, "one per reason; Normal events and old ones left out"
    backoff = events[f"Warning BackOff on pod/{cluster.crashing}"]
    assert backoff.count == 20 and f"pod/{cluster.healthy}" in backoff.text
    assert backoff.timestamp == T0 - timedelta(minutes=8)

    (rollout,) = by_kind(findings, "rollout")
    assert rollout.object == "deployment/checkout"
    assert rollout.timestamp == T0 - timedelta(minutes=12)
    assert "revision 2" in rollout.text and "app=reg/checkout:1.4.2" in rollout.text
    assert "revision 1 ran app=reg/checkout:1.4.1" in rollout.text
    (state,) = by_kind(findings, "deployment")
    assert "2 desired, 1 ready" in state.text and "history: 2 at" in state.text

    assert {r.method for r in cluster.api.requests} == {"GET"}, "read-only verbs only"
    assert all(
        r.headers["Authorization"] == f"Bearer {cluster.api.token}" for r in cluster.api.requests
    )


async def test_a_failed_jobs_pod_has_its_own_output_read(cluster: Cluster) -> None:
    add_failed_job(cluster.api)
    findings, report = await kubernetes.fetch_kubernetes(
        cluster.source(), job_alert(job_name="db-migrate")
    )

    assert report.error is None, report.error
    assert [f.object for f in by_kind(findings, "pod")] == [f"pod/{JOB_POD}"]
    (crash,) = by_kind(findings, "log")
    assert crash.object == f"pod/{JOB_POD}" and crash.timestamp == T0 - timedelta(minutes=3)
    assert crash.text.startswith("last 3 lines of the terminated migrate container (Error, exit")
    assert crash.text.endswith(SYNTAX_ERROR)
    assert by_kind(findings, "previous_log") == [], "it never restarted"
    assert log_reads(cluster.api, JOB_POD) == [False], "the current (terminated) container"
    assert crash.score == max(f.score for f in findings), "the crash's own words rank first"

    (state,) = by_kind(findings, "job")
    assert state.object == "job/db-migrate"
    assert state.text.startswith("Failed BackoffLimitExceeded: Job has reached the specified")
    assert "0 succeeded, 1 failed of 1 completions, backoff limit 0" in state.text
    assert any(f.text.startswith("Warning BackoffLimitExceeded") for f in findings)
    selectors = pod_listings(cluster.api)
    assert selectors == ["app=", "job-name=db-migrate"], "the scrape job's name is not looked up"

    (kept,) = [f for f in select_findings(findings, 3000) if f.kind == "log"]
    assert SYNTAX_ERROR in format_finding(kept) and kept.ref.startswith("K")


@pytest.mark.parametrize(
    ("labels", "missing", "selectors"),
    [
        ({"job_name": "db-migrate"}, "job-name",
         ["app=", "job-name=db-migrate", "batch.kubernetes.io/job-name=db-migrate"]),
        ({"job": "db-migrate"}, None, ["app=", "job-name=db-migrate"]),
    ],
)  # fmt: skip
async def test_a_jobs_pods_by_either_label_the_controller_sets(
    cluster: Cluster, labels: dict[str, str], missing: str | None, selectors: list[str]
) -> None:
    add_failed_job(cluster.api, drop_pod_label=missing)
    findings, report = await kubernetes.fetch_kubernetes(cluster.source(), job_alert(**labels))
    assert report.error is None, report.error
    assert pod_listings(cluster.api) == selectors
    (crash,) = by_kind(findings, "log")
    assert SYNTAX_ERROR in crash.text
    assert [f.object for f in by_kind(findings, "job")] == ["job/db-migrate"], "via its owner"


async def test_which_containers_logs_are_read(cluster: Cluster) -> None:
    """CrashLoopBackOff: the previous container's log (the current one is waiting). A healthy
    running pod: none."""
    findings, _ = await kubernetes.fetch_kubernetes(cluster.source(), alert())
    assert log_reads(cluster.api, cluster.crashing) == [True]
    assert log_reads(cluster.api, cluster.healthy) == []
    assert [f.object for f in by_kind(findings, "previous_log")] == [f"pod/{cluster.crashing}"]
    assert by_kind(findings, "log") == []


@pytest.mark.parametrize("repeated", [True, False])
async def test_a_terminated_container_after_restarts_is_read_once_per_crash(
    cluster: Cluster, repeated: bool
) -> None:
    """Terminated again after two restarts: its own log and the previous container's; when
    both say the same, one finding."""
    crashed = pod(
        "worker-1", NS, created=T0 - timedelta(minutes=5), labels={"app": "worker"},
        phase="Running", restarts=2, terminated=Terminated("Error", 1, finished=T0),
        last_terminated=Terminated("Error", 1, finished=T0 - timedelta(minutes=1)),
    )  # fmt: skip
    cluster.api.add(crashed)
    cluster.api.set_log(NS, "worker-1", "app", [(T0, "panic: nil map")])
    before = "panic: nil map" if repeated else "FATAL queue unreachable"
    cluster.api.set_log(NS, "worker-1", "app", [(T0, before)], previous=True)

    findings, _ = await kubernetes.fetch_kubernetes(cluster.source(), alert(service="worker"))
    assert sorted(log_reads(cluster.api, "worker-1")) == [False, True]
    (current,) = by_kind(findings, "log")
    assert current.text.endswith("panic: nil map") and current.timestamp == T0
    (state,) = by_kind(findings, "pod")
    assert "terminated Error (exit code 1)" in state.text and state.timestamp == T0
    assert "last terminated Error (exit code 1) at 2026-12-01T09:59:00Z" in state.text
    previous = by_kind(findings, "previous_log")
    assert [f.text.splitlines()[-1] for f in previous] == ([] if repeated else [before])


def test_selection_keeps_a_crash_logs_end_when_it_does_not_fit_whole() -> None:
    ended = SimpleNamespace(reason="Error", exit_code=2, finished_at=T0)
    log = "".join(f"step {n}: copying {'x' * 70}\n" for n in range(40)) + SYNTAX_ERROR
    crash = crash_log_finding("prod", JOB_POD, "migrate", log, ended, previous=False)
    assert crash is not None and len(crash.text) <= 1500, "capped from its start"
    assert crash.text.startswith("last 41 lines of the terminated migrate container (Error")
    assert crash.text.endswith(SYNTAX_ERROR)

    oom = kubernetes.KubeFinding(source="prod", kind="pod", text="OOMKilled " * 20, score=5)
    cut, kept_oom = sorted(select_findings([crash, oom], 700), key=lambda f: f.kind)
    assert kept_oom.text == oom.text, "the better finding first, whole"
    assert cut.text.startswith("last 41 lines of the terminated migrate container (Error")
    assert cut.text.endswith(SYNTAX_ERROR) and "\n…" in cut.text
    spent = sum(len(format_finding(f.model_copy(update={"ref": ""}))) + 1 for f in (cut, oom))
    assert spent == 700, "the log's end fills what is left"
    assert [f.kind for f in select_findings([crash, oom], 400)] == ["pod"], "too little left"


@pytest.mark.parametrize("before", [timedelta(minutes=12), timedelta(minutes=3)])
async def test_a_rollout_ranks_like_the_deploy_log_line_it_is(
    cluster: Cluster, before: timedelta
) -> None:
    dep = deployment(
        "cart", NS, created=T0 - timedelta(days=1), images={"app": "reg/cart:2"}, revision=2
    )
    cluster.api.add(
        dep,
        replicaset(dep, revision=1, created=T0 - timedelta(days=1), images={"app": "reg/cart:1"}),
        replicaset(dep, revision=2, created=T0 - before, images={"app": "reg/cart:2"}),
    )
    findings, _ = await kubernetes.fetch_kubernetes(cluster.source(), alert(deployment="cart"))
    (rollout,) = [f for f in by_kind(findings, "rollout") if f.object == "deployment/cart"]

    routine = LogLine(source="app", timestamp=T0 - timedelta(minutes=30), text="GET /cart 200")
    deploy = LogLine(source="app", timestamp=T0 - before, text="deploy cart rolled out version 2")
    lines = build_evidence([routine, deploy], [], [], 10_000, starts_at=T0).logs
    assert rollout.score == next(line.score for line in lines if "deploy" in line.text)


async def test_the_oom_kill_outranks_the_healthy_and_selection_keeps_the_best(
    cluster: Cluster,
) -> None:
    findings, _ = await kubernetes.fetch_kubernetes(cluster.source(), alert())
    pods = {f.object: f for f in by_kind(findings, "pod")}
    crashed, healthy = pods[f"pod/{cluster.crashing}"], pods[f"pod/{cluster.healthy}"]
    assert crashed.score > 4.0 > healthy.score  # severe like an OOM log line; 3 restarts more
    assert healthy.score == min(f.score for f in findings)

    best = sorted(findings, key=lambda f: -f.score)[:3]
    budget = sum(len(format_finding(f.model_copy(update={"ref": "K4"}))) + 1 for f in best)
    kept = select_findings(findings, budget, first=4)
    assert [f.ref for f in kept] == ["K4", "K5", "K6"]
    dropped = [f for f in findings if f.text not in {k.text for k in kept}]
    assert min(f.score for f in kept) >= max(f.score for f in dropped), "the best are kept"
    stamps = [f.timestamp for f in kept if f.timestamp is not None]
    assert stamps == sorted(stamps), "shown in time order"


async def test_findings_read_as_log_lines_for_the_offline_analyzer(cluster: Cluster) -> None:
    findings, _ = await kubernetes.fetch_kubernetes(cluster.source(), alert())
    kept = select_findings(findings, 10_000)
    lines = {f.kind: f.as_log_line() for f in kept}
    assert is_change(lines["rollout"].text) and not is_error(lines["rollout"].text)
    crashed = max(by_kind(kept, "pod"), key=lambda f: f.score).as_log_line()
    assert is_error(crashed.text) and is_error(lines["previous_log"].text)
    assert lines["rollout"].source == "prod deployment/checkout"
    assert lines["rollout"].ref == next(f.ref for f in kept if f.kind == "rollout")


async def test_a_rollout_before_the_window_is_history_not_a_change(cluster: Cluster) -> None:
    findings, _ = await kubernetes.fetch_kubernetes(
        cluster.source(), alert(), lookback_s=300, lookahead_s=60
    )
    assert by_kind(findings, "rollout") == []
    assert "history: 2 at" in by_kind(findings, "deployment")[0].text


async def test_the_alerts_pod_label_wins_and_a_vanished_pod_is_said(cluster: Cluster) -> None:
    findings, report = await kubernetes.fetch_kubernetes(
        cluster.source(), alert(pod=cluster.healthy)
    )
    assert [f.object for f in by_kind(findings, "pod")] == [f"pod/{cluster.healthy}"]
    assert not cluster.api.calls("/pods?")  # no listing when the alert names its pod
    assert all("labelSelector" not in r.query for r in cluster.api.calls("/pods"))

    findings, report = await kubernetes.fetch_kubernetes(cluster.source(), alert(pod="gone-1"))
    assert report.error is None
    assert [f.text for f in findings] == [
        f"pod gone-1 (named by the alert) no longer exists in {NS}"
    ]


async def test_redaction_and_numbering_of_selected_findings(cluster: Cluster) -> None:
    cluster.api.set_log(
        NS, cluster.crashing, "app",
        [(T0, "FATAL cannot connect to postgres://shop:hunter2hunter2@db:5432/shop")],
        previous=True,
    )  # fmt: skip
    findings, _ = await kubernetes.fetch_kubernetes(cluster.source(), alert())
    kept = select_findings(findings, 10_000, redact=Redactor().redact)
    text = "\n".join(format_finding(f) for f in kept)
    assert "hunter2hunter2" not in text and "postgres://shop:[REDACTED]@db" in text
    assert [f.ref for f in kept] == [f"K{n}" for n in range(1, len(findings) + 1)]


async def test_label_values_cannot_widen_the_selector(cluster: Cluster) -> None:
    findings, _ = await kubernetes.fetch_kubernetes(
        cluster.source(), alert(service="checkout,app!=x")
    )
    (listing,) = [
        r for r in cluster.api.calls(f"/namespaces/{NS}/pods") if "labelSelector" in r.query
    ]
    assert listing.query["labelSelector"] == "app="
    assert by_kind(findings, "pod") == []


async def test_a_namespace_that_is_not_one_is_reported(cluster: Cluster) -> None:
    findings, report = await kubernetes.fetch_kubernetes(
        cluster.source(), alert(namespace="../kube-system")
    )
    assert findings == [] and cluster.api.requests == []
    assert "not a namespace" in (report.error or "")


async def test_an_unreachable_or_refusing_cluster_is_a_report_not_a_crash(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.api.outage = True
    findings, report = await kubernetes.fetch_kubernetes(cluster.source(), alert())
    assert findings == []
    assert "HTTP 503" in (report.error or "") and "unable to handle" in (report.error or "")

    cluster.api.outage = False
    wrong = cluster.api.write_kubeconfig(tmp_path / "wrong", token="not-the-token")
    _, report = await kubernetes.fetch_kubernetes(cluster.source(kubeconfig=str(wrong)), alert())
    assert "HTTP 401: Unauthorized" in (report.error or "")


async def test_check_reaches_version(cluster: Cluster, tmp_path: Path) -> None:
    line = await kubernetes.check(cluster.source())
    assert line == f"kubernetes v1.31.4 at {cluster.api.base_url} (context {CONTEXT})"
    assert [r.path for r in cluster.api.requests] == ["/version/"]

    wrong = cluster.api.write_kubeconfig(tmp_path / "wrong", token="not-the-token")
    with pytest.raises(KubernetesError, match="HTTP 401"):
        await kubernetes.check(cluster.source(kubeconfig=str(wrong)))
    cluster.api.stop()
    with pytest.raises(KubernetesError, match=r"cannot reach http://127\.0\.0\.1"):
        await kubernetes.check(cluster.source())


# --------------------------------------------------------------------------------------------
# The tools' questions


async def test_events_warning_first_by_object(cluster: Cluster) -> None:
    async with KubeClient(cluster.source()) as kube:
        everything = await kubernetes.events(kube, NS)
        one = await kubernetes.events(kube, NS, cluster.crashing)
    kinds = [f.text.split()[0] for f in everything]
    assert kinds == sorted(kinds, key=lambda k: k != "Warning") and "Normal" in kinds
    assert {f.object for f in one} == {f"pod/{cluster.crashing}"}
    assert any(f.text.startswith("Warning BackOff") and f.count == 14 for f in one)
    assert cluster.api.calls("/events")[-1].query["fieldSelector"] == (
        f"involvedObject.name={cluster.crashing}"
    )


async def test_describe_each_kind(cluster: Cluster) -> None:
    async with KubeClient(cluster.source()) as kube:
        (crashed,) = await kubernetes.describe(kube, "pod", NS, cluster.crashing)
        (dep,) = await kubernetes.describe(kube, "deploy", NS, "checkout")
        (rs,) = await kubernetes.describe(kube, "rs", NS, cluster.crashing.rsplit("-", 1)[0])
        (host,) = await kubernetes.describe(kube, "node", "", "node-1")
        with pytest.raises(KubernetesError, match="kind 'service' is not supported"):
            await kubernetes.describe(kube, "service", NS, "checkout")
        with pytest.raises(KubernetesError, match='HTTP 404: pods "nope" not found'):
            await kubernetes.describe(kube, "pod", NS, "nope")
    assert "OOMKilled (exit code 137)" in crashed.text and "condition Ready=False" in crashed.text
    assert "node node-1" in crashed.text and "owned by ReplicaSet/" in crashed.text
    assert "revision 2" in dep.text and "history: 2 at" in dep.text and "; 1 at" in dep.text
    assert "revision 2" in rs.text and "owned by Deployment/checkout" in rs.text
    assert "kubelet v1.31.4" in host.text and "Ready=True (KubeletReady)" in host.text


async def test_describe_a_job_and_read_its_terminated_containers_output(
    cluster: Cluster,
) -> None:
    add_failed_job(cluster.api)
    async with KubeClient(cluster.source()) as kube:
        (state,) = await kubernetes.describe(kube, "jobs", NS, "db-migrate")
        output = await kubernetes.logs(kube, NS, JOB_POD, previous=False)
        with pytest.raises(KubernetesError, match=r'HTTP 404: jobs\.batch "nope" not found'):
            await kubernetes.describe(kube, "job", NS, "nope")
    assert state.kind == "job" and state.object == "job/db-migrate"
    assert (
        "Failed BackoffLimitExceeded" in state.text and "images migrate=busybox:1.36" in state.text
    )
    assert "conditions FailureTarget=True (BackoffLimitExceeded)" in state.text
    assert output[-1].text == SYNTAX_ERROR and output[-1].score > 0
    assert cluster.api.calls("/apis/batch/v1/namespaces/shop/jobs/db-migrate")


async def test_logs_current_and_previous(cluster: Cluster) -> None:
    async with KubeClient(cluster.source()) as kube:
        current = await kubernetes.logs(kube, NS, cluster.crashing)
        previous = await kubernetes.logs(
            kube, NS, cluster.crashing, container="app", previous=True, tail_lines=2
        )
        with pytest.raises(KubernetesError, match="previous terminated container"):
            await kubernetes.logs(kube, NS, cluster.healthy, previous=True)
    assert [f.text for f in current] == ["INFO starting checkout"]
    assert current[0].timestamp == T0
    assert [f.text for f in previous] == [
        "java.lang.OutOfMemoryError: Java heap space",
        "\tat com.shop.Catalogue.load(Catalogue.java:42)",
    ]
    assert previous[0].score > 0 and previous[0].object == f"pod/{cluster.crashing}/app"
    asked = cluster.api.calls("/log")[1].query
    assert asked["previous"] in ("true", "True") and asked["tailLines"] == "2"


# --------------------------------------------------------------------------------------------
# Configuration


def write_config(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"sources:\n  kubernetes:\n    - {source}\n", encoding="utf-8")
    return path


def test_config_accepts_a_kubeconfig_and_its_context(cluster: Cluster, tmp_path: Path) -> None:
    path = write_config(
        tmp_path, f"{{name: prod, kubeconfig: {cluster.kubeconfig}, context: {CONTEXT}}}"
    )
    (source,) = load_config(path).sources.kubernetes
    assert source.context == CONTEXT and source.namespace == "{{ labels.namespace }}"
    assert load_config(write_config(tmp_path, "{name: c, in_cluster: true}")).sources.kubernetes


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{name: prod, kubeconfig: /nope/kubeconfig}",
         "kubeconfig /nope/kubeconfig does not exist"),
        ("{name: prod, kubeconfig: KUBECONFIG, context: staging}",
         f"context 'staging' is not in kubeconfig KUBECONFIG (contexts: {CONTEXT})"),
        ("{name: prod}", "set kubeconfig: PATH, or in_cluster: true"),
        ("{name: prod, in_cluster: true, context: x}", "in_cluster: true uses the service account"),
        ("{name: prod, kubeconfig: KUBECONFIG, verbs: [delete]}", "verbs: unknown key"),
    ],
)  # fmt: skip
def test_config_refuses_what_cannot_work(
    cluster: Cluster, tmp_path: Path, entry: str, message: str
) -> None:
    entry = entry.replace("KUBECONFIG", str(cluster.kubeconfig))
    with pytest.raises(ConfigError) as refused:
        load_config(write_config(tmp_path, entry))
    assert message.replace("KUBECONFIG", str(cluster.kubeconfig)) in str(refused.value)
    assert "sources.kubernetes.0" in str(refused.value)


def test_config_refuses_a_kubeconfig_without_current_context(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\ncontexts: [{name: a, context: {}}]\n")
    with pytest.raises(ConfigError, match="has no current-context: set context"):
        load_config(write_config(tmp_path, f"{{name: prod, kubeconfig: {kubeconfig}}}"))
