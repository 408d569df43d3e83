"""Kubernetes evidence through the whole investigation: the running app reads the API
stand-in (real `kubernetes_asyncio` client, real sockets) beside a log file, the offline
analyser and a scripted LLM cite what the cluster said as `K…` refs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_config
from tests.fakes.k8s_api import (
    FakeKubeApi,
    Terminated,
    deployment,
    event,
    job,
    pod,
    replicaset,
)
from tests.fakes.llm_servers import ScriptedLLMServer, answer, tool_call
from tests.support.analyses import rca_answer
from tests.support.app import RunningApp, investigating, run_app
from tests.support.payloads import alert, group
from tests.support.waiting import eventually

STARTS = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
NS = "shop"
TOKEN = "k8s-bearer-0123456789abcdef"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[FakeKubeApi, Path, str]]:
    """checkout rolled out 1.4.2 ten minutes before the alert; its pod is OOMKilled since."""
    with FakeKubeApi(token=TOKEN) as api:
        dep = deployment(
            "checkout", NS, created=STARTS - timedelta(days=3),
            images={"app": "reg/checkout:1.4.2"}, revision=2, ready=0, replicas=1,
        )  # fmt: skip
        old = replicaset(
            dep, revision=1, created=STARTS - timedelta(days=3),
            images={"app": "reg/checkout:1.4.1"},
        )  # fmt: skip
        new = replicaset(
            dep, revision=2, created=STARTS - timedelta(minutes=10),
            images={"app": "reg/checkout:1.4.2"}, replicas=1,
        )  # fmt: skip
        crashing = pod(
            f"{new['metadata']['name']}-abcde", NS, created=STARTS - timedelta(minutes=9),
            owner=new, ready=False, restarts=4, waiting_reason="CrashLoopBackOff",
            last_terminated=Terminated("OOMKilled", 137, finished=STARTS - timedelta(minutes=1)),
        )  # fmt: skip
        api.add(dep, old, new, crashing)
        api.add(
            event(crashing, "BackOff", "Back-off restarting failed container app",
                  first=STARTS - timedelta(minutes=6), last=STARTS, count=9),
        )  # fmt: skip
        api.set_log(
            NS,
            crashing["metadata"]["name"],
            "app",
            [(STARTS - timedelta(minutes=1), "java.lang.OutOfMemoryError: Java heap space")],
            previous=True,
        )
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        yield api, kubeconfig, crashing["metadata"]["name"]


SYNTAX_ERROR = '/bin/sh: syntax error: unexpected "fi"'


@pytest.fixture
def failed_job(tmp_path: Path) -> Iterator[Path]:
    """db-migrate ran once and failed (exit code 2, never restarted: restartPolicy Never,
    backoffLimit 0): the shell could not parse its script. Yields the kubeconfig."""
    with FakeKubeApi(token=TOKEN) as api:
        ended = STARTS - timedelta(minutes=2)
        migrate = job(
            "db-migrate", NS, created=STARTS - timedelta(minutes=3),
            images={"migrate": "busybox:1.36"}, finished=ended,
        )  # fmt: skip
        runner = pod(
            "db-migrate-x7k2p", NS, created=STARTS - timedelta(minutes=3), owner=migrate,
            phase="Failed", terminated=Terminated("Error", 2, finished=ended),
        )  # fmt: skip
        api.add(migrate, runner)
        api.add(
            event(migrate, "BackoffLimitExceeded", "Job has reached the specified backoff limit",
                  first=STARTS - timedelta(minutes=2), component="job-controller"),
        )  # fmt: skip
        api.set_log(
            NS,
            "db-migrate-x7k2p",
            "migrate",
            [
                (STARTS - timedelta(minutes=3), "running migrations"),
                (STARTS - timedelta(minutes=2), SYNTAX_ERROR),
            ],
        )
        yield api.write_kubeconfig(tmp_path / "kubeconfig")


def config_for(
    store_url: str, tmp_path: Path, kubeconfig: Path, llm: ScriptedLLMServer | None = None
) -> Any:
    logs = tmp_path / "checkout.log"
    logs.write_text(f"{(STARTS - timedelta(minutes=3)).isoformat()} INFO request served\n")
    llm_section: dict[str, Any] = {"provider": "offline"}
    if llm is not None:
        llm_section = {"provider": "openai", "model": llm.model, "base_url": llm.base_url}
    return make_config(
        store_url,
        sources={
            "logs": [{"type": "file", "name": "app", "path": str(logs)}],
            "kubernetes": [
                {
                    "name": "prod",
                    "kubeconfig": str(kubeconfig),
                    "namespace": NS,
                    "selector": "app={{ labels.service }}",
                }
            ],
        },
        llm=llm_section,
        investigation={"checkpoint_path": str(tmp_path / "checkpoints.db")},
    )


async def investigate(
    app: RunningApp, **labels: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    firing = alert("a", starts_at=STARTS)
    firing["labels"].update(labels)
    response = await app.client.post("/webhooks/alertmanager", json=group("g1", [firing]))
    incident_id = response.json()["incident_id"]

    async def probe() -> dict[str, Any] | None:
        shown = (await app.client.get(f"/api/v1/incidents/{incident_id}")).json()
        return shown["analysis"] or None

    analysis = await eventually(probe, within=30)
    events = (await app.client.get(f"/api/v1/incidents/{incident_id}/timeline")).json()
    return analysis, events


async def test_the_offline_analysis_cites_the_oom_kill_as_a_k_ref(
    cluster: tuple[FakeKubeApi, Path, str], store_url: str, tmp_path: Path
) -> None:
    api, kubeconfig, _ = cluster
    async with run_app(config_for(store_url, tmp_path, kubeconfig), parts=investigating()) as app:
        analysis, events = await investigate(app)

    assert analysis["execution_status"] == "COMPLETED"
    assert "memory" in analysis["root_cause"].lower()
    kube = [item for item in analysis["evidence"] if item["kind"] == "kubernetes"]
    assert kube, "the OOM kill is cited"
    assert all(re.fullmatch(r"K\d+", item["ref"]) for item in kube)
    assert any("OOMKilled" in item["text"] or "OutOfMemory" in item["text"] for item in kube)
    collected = next(e for e in events if e["type"] == "EVIDENCE_COLLECTED")
    assert collected["data"]["kept_kubernetes"] >= 1
    assert "cluster findings" in collected["message"]
    assert {r["source"] for r in collected["data"]["sources"]} == {"app", "prod"}
    assert {r.method for r in api.requests} == {"GET"}, "read-only"


async def test_the_llm_sees_k_refs_and_a_kubernetes_tool_continues_them(
    cluster: tuple[FakeKubeApi, Path, str], store_url: str, tmp_path: Path
) -> None:
    _, kubeconfig, crashing = cluster
    rca = rca_answer(
        "K1",
        root_cause="checkout 1.4.2 runs out of memory and is OOMKilled",
        reasoning="K1 and the previous container's OutOfMemoryError agree.",
        confidence_score=75,
    )
    describe = {"source": "prod", "kind": "pod", "namespace": NS, "name": crashing}
    with ScriptedLLMServer("openai") as llm:
        llm.script(tool_call("kubernetes_describe", describe), answer(rca))
        config = config_for(store_url, tmp_path, kubeconfig, llm)
        async with run_app(config, parts=investigating()) as app:
            analysis, events = await investigate(app)

    assert analysis["execution_status"] == "COMPLETED"
    (cited,) = analysis["evidence"]
    assert (cited["ref"], cited["kind"], cited["source"]) == ("K1", "kubernetes", "prod")
    first = llm.messages(0)[-1]["content"]
    gathered = sorted({int(n) for n in re.findall(r"\[K(\d+)\]", first)})
    assert gathered == list(range(1, len(gathered) + 1)) and "OOMKilled" in first
    assert set(llm.tool_names(0)) == {
        "search_logs",
        "kubernetes_events",
        "kubernetes_describe",
        "kubernetes_logs",
    }
    (result,) = [m["content"] for m in llm.messages(1) if m["role"] == "tool"]
    assert f"[K{len(gathered) + 1}]" in result, "tool refs continue after the evidence's"
    assert TOKEN not in llm.all_bodies()
    called = next(e for e in events if e["type"] == "TOOL_CALLED")["data"]
    assert (called["tool"], called["results"], called["error"]) == ("kubernetes_describe", 1, None)


async def test_a_failed_jobs_crash_output_reaches_the_prompt_as_a_k_ref(
    failed_job: Path, store_url: str, tmp_path: Path
) -> None:
    """kube-state-metrics' KubeJobFailed names the Job (`job_name`), not a pod; the Job's pod
    never restarted, so the shell's error is in its terminated container's own log."""
    rca = rca_answer(
        "K1",
        "K2",
        "K3",
        "K4",
        root_cause="db-migrate's shell script does not parse",
        reasoning="The migrate container's last line is a shell syntax error.",
    )
    with ScriptedLLMServer("openai") as llm:
        llm.script(answer(rca))
        config = config_for(store_url, tmp_path, failed_job, llm)
        async with run_app(config, parts=investigating()) as app:
            analysis, events = await investigate(
                app, alertname="KubeJobFailed", job_name="db-migrate", job="kube-state-metrics"
            )

    assert analysis["execution_status"] == "COMPLETED"
    prompt = llm.messages(0)[-1]["content"]
    crash = re.search(
        r"^\[K\d+\] \S+ pod/db-migrate-x7k2p: last 2 lines of "
        r"the terminated migrate container \(Error, exit code 2\): ⏎ running migrations ⏎ (.*)$",
        prompt,
        re.MULTILINE,
    )
    assert crash is not None, prompt
    assert crash.group(1) == SYNTAX_ERROR
    assert "job/db-migrate: Failed BackoffLimitExceeded" in prompt
    collected = next(e for e in events if e["type"] == "EVIDENCE_COLLECTED")
    assert collected["data"]["kept_kubernetes"] >= 3  # the pod, its output, the Job, the event
