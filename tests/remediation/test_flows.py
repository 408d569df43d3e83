"""Approved remediations: who may approve, persisted scheduling, verification on Prometheus."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from firebreak.remediation.flows import ApprovedRemediation
from firebreak.store.schemas import RemediationParameter, RemediationProposal
from firebreak.tools.actions import ActionError
from tests.conftest import make_config
from tests.support.app import run_app
from tests.support.escalation import RecordingNotifier, open_incident, recording, timeline
from tests.support.promstack import run_prometheus, serve_metrics
from tests.support.waiting import eventually

APPEND = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n'); print('done', sys.argv[2])"


def append_action(**extra: Any) -> dict[str, Any]:
    return {
        "name": "mark",
        "description": "append a line to a file",
        "kind": "command",
        "argv": [sys.executable, "-c", APPEND, "{{ path }}", "{{ word }}"],
        "parameters": [{"name": "path"}, {"name": "word", "pattern": "^[a-z]{1,10}$"}],
        "timeout_s": 10,
        **extra,
    }


def approved(
    incident_id: int, action: str = "mark", delay_s: float = 0, key: str = "", **params: str
) -> Any:
    proposal = RemediationProposal(
        action=action,
        parameters=[RemediationParameter(name=k, value=v) for k, v in params.items()],
        reason="because",
    )
    return ApprovedRemediation(incident_id, proposal, approved_by="U1", delay_s=delay_s, key=key)


def app_for(store_url: str, notifier: RecordingNotifier, **sections: Any) -> Any:
    return run_app(make_config(store_url, **sections), parts=recording(notifier))


async def test_only_approvers_may_approve_and_refused_actions_never_run(
    store_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    remediation = {"actions": [append_action()], "approvers": ["U_BOSS", "S_SRE"]}
    notifier = RecordingNotifier()
    async with app_for(store_url, notifier, remediation=remediation) as app:
        remediations: Any = app.runtime.remediations
        assert not remediations.may_approve("U_INTERN", [])
        assert not remediations.may_approve("U_INTERN", ["S_OTHER"])
        assert remediations.may_approve("U_INTERN", ["S_SRE"])
        assert remediations.may_approve("U_BOSS", [])

        incident_id = await open_incident(app.client)
        for bad in (
            approved(incident_id, action="rm-everything", path=str(marker), word="x"),
            approved(incident_id, path=str(marker), word="NOT-lowercase"),
            approved(incident_id, path=str(marker)),  # missing parameter
            approved(incident_id, path=str(marker), word="ok", extra="x"),
            approved(incident_id, path="-rf", word="x"),  # the default pattern
            approved(incident_id, path="--help", word="x"),
        ):
            with pytest.raises(ActionError):
                await remediations.schedule(bad)
        await asyncio.sleep(0.5)
        assert not marker.exists()
        assert await timeline(app.client, incident_id, "REMEDIATION_EXECUTED") == []

    open_config = {"actions": [append_action()], "approvers": []}
    async with app_for(store_url, notifier, remediation=open_config) as app:
        assert app.runtime.remediations.may_approve("U_ANYONE", [])  # type: ignore[union-attr]


async def test_a_parameter_posing_as_an_option_is_never_scheduled_whatever_the_pattern(
    store_url: str, tmp_path: Path
) -> None:
    """`--help` or `-rf` for a placeholder standing alone in argv, under a pattern that admits
    anything: refused when approved (nothing scheduled, nothing run, nothing recorded)."""
    marker = tmp_path / "marker"
    lax = append_action(parameters=[{"name": "path"}, {"name": "word", "pattern": "^.*$"}])
    notifier = RecordingNotifier()
    async with app_for(store_url, notifier, remediation={"actions": [lax]}) as app:
        incident_id = await open_incident(app.client)
        for value in ("--help", "-rf"):
            with pytest.raises(ActionError, match="starts with '-'"):
                await app.runtime.remediations.schedule(  # type: ignore[union-attr]
                    approved(incident_id, path=str(marker), word=value)
                )
        await asyncio.sleep(0.5)
        assert not marker.exists()
        assert await timeline(app.client, incident_id, "REMEDIATION_EXECUTED") == []


async def test_scheduled_approval_runs_once_after_a_restart(store_url: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    remediation = {"actions": [append_action()]}
    notifier = RecordingNotifier()
    async with app_for(store_url, notifier, remediation=remediation) as app:
        incident_id = await open_incident(app.client)
        await app.runtime.remediations.schedule(  # type: ignore[union-attr]
            approved(incident_id, delay_s=1.0, path=str(marker), word="hello")
        )
        assert "will run" in notifier.posts("remediation")[0]
    assert not marker.exists()  # stopped before it was due
    await asyncio.sleep(1.2)

    async with app_for(store_url, notifier, remediation=remediation) as app:

        async def executed() -> list[dict]:
            return await timeline(app.client, incident_id, "REMEDIATION_EXECUTED")

        event = (await eventually(executed, within=10))[0]
        await asyncio.sleep(0.8)  # a second run would show by now
        assert marker.read_text() == "hello\n"
        assert event["data"]["ok"] is True and "done hello" in event["data"]["output"]
        assert len(await executed()) == 1
    assert any("succeeded" in text for text in notifier.posts("remediation"))


async def test_one_approval_scheduled_twice_runs_once(store_url: str, tmp_path: Path) -> None:
    """A resumed investigation re-runs its last step after a crash: same approval, same key."""
    marker = tmp_path / "marker"
    notifier = RecordingNotifier()
    async with app_for(store_url, notifier, remediation={"actions": [append_action()]}) as app:
        incident_id = await open_incident(app.client)
        once = approved(incident_id, key="inv-1-abc", path=str(marker), word="once")
        await app.runtime.remediations.schedule(once)  # type: ignore[union-attr]
        await app.runtime.remediations.schedule(once)  # type: ignore[union-attr]

        async def executed() -> list[dict]:
            return await timeline(app.client, incident_id, "REMEDIATION_EXECUTED")

        await eventually(executed, within=10)
        await asyncio.sleep(0.8)  # a second run would show by now
        assert len(await executed()) == 1
    assert marker.read_text() == "once\n"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with serve_metrics() as exporter:
        exporter.set("checkout_error_ratio", 0.42)
        exporter.set("checkout_latency_seconds", 0.05)
        with run_prometheus(
            tmp_path_factory.mktemp("prom"), scrape_targets=[exporter.target]
        ) as url:
            yield url, exporter


async def scraped(url: str, metric: str) -> bool:
    async with httpx.AsyncClient() as client:
        answer = (await client.get(f"{url}/api/v1/query", params={"query": metric})).json()
    return bool(answer["data"]["result"])


async def test_verification_on_real_prometheus_reports_failure_and_success(
    store_url: str, prometheus: Any
) -> None:
    url, exporter = prometheus
    await eventually(lambda: scraped(url, "checkout_error_ratio"), within=20)
    await eventually(lambda: scraped(url, "checkout_latency_seconds"), within=20)
    actions = [
        {  # a real HTTP call (the exporter's own page) whose fix did not work
            "name": "restart",
            "description": "restart checkout",
            "kind": "http",
            "method": "GET",
            "url": exporter.url,
            "verify": {"promql": "checkout_error_ratio", "threshold": 0.05, "within_s": 0.3},
        },
        {
            "name": "scale",
            "description": "scale checkout",
            "kind": "command",
            "argv": [sys.executable, "-c", "print('scaled')"],
            "verify": {
                "promql": "checkout_latency_seconds",
                "threshold": 0.5,
                "op": "<=",
                "within_s": 0.3,
            },
        },
    ]
    notifier = RecordingNotifier()
    sections = {
        "remediation": {"actions": actions},
        "sources": {"metrics": [{"name": "prom", "type": "prometheus", "url": url}]},
    }
    async with app_for(store_url, notifier, **sections) as app:
        incident_id = await open_incident(app.client)
        remediations: Any = app.runtime.remediations
        await remediations.schedule(approved(incident_id, action="restart"))
        await remediations.schedule(approved(incident_id, action="scale"))

        async def verified() -> list[dict] | None:
            found = await timeline(app.client, incident_id, "REMEDIATION_VERIFIED")
            return found if len(found) == 2 else None

        events = {e["data"]["action"]: e["data"] for e in await eventually(verified, within=15)}
        executed = await timeline(app.client, incident_id, "REMEDIATION_EXECUTED")

    assert all(e["data"]["ok"] for e in executed)
    assert any("HTTP 200" in e["data"]["output"] for e in executed)
    assert events["restart"]["ok"] is False
    assert events["restart"]["value"] == pytest.approx(0.42)
    assert events["restart"]["threshold"] == 0.05
    assert events["scale"]["ok"] is True
    assert events["scale"]["value"] == pytest.approx(0.05)
    texts = notifier.posts("remediation")
    assert any("Verification of `restart` failed" in t for t in texts)
    assert any("Verification of `scale` passed" in t for t in texts)


async def test_output_is_redacted_and_a_failing_command_is_reported(
    store_url: str,
) -> None:
    leak = "import sys; print('password=hunter22 token=abc'); sys.exit(3)"
    action = {
        "name": "leaky",
        "description": "prints a secret",
        "kind": "command",
        "argv": [sys.executable, "-c", leak],
        "verify": {"promql": "up", "threshold": 1, "within_s": 0.1},
    }
    notifier = RecordingNotifier()
    async with app_for(store_url, notifier, remediation={"actions": [action]}) as app:
        incident_id = await open_incident(app.client)
        await app.runtime.remediations.schedule(approved(incident_id, action="leaky"))  # type: ignore[union-attr]

        async def executed() -> list[dict]:
            return await timeline(app.client, incident_id, "REMEDIATION_EXECUTED")

        event = (await eventually(executed, within=10))[0]
        await asyncio.sleep(0.4)
        assert await timeline(app.client, incident_id, "REMEDIATION_VERIFIED") == []
    assert event["data"]["ok"] is False
    assert "hunter22" not in event["data"]["output"] and "exit status 3" in event["data"]["output"]
    assert all("hunter22" not in text for text in notifier.posts("remediation"))
