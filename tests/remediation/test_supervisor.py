"""A remediation's outcome survives a kill -9 of Firebreak: a real `firebreak serve` is killed
while an approved action runs; the action's supervisor records how it ended, and the next
`serve` puts that on the timeline instead of "outcome unknown". On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select

from firebreak.remediation.flows import ApprovedRemediation
from firebreak.store import remediations
from firebreak.store.db import create_sync_engine
from firebreak.store.models import RemediationRun
from firebreak.store.schemas import RemediationParameter, RemediationProposal
from firebreak.tools.config import RemediationAction
from tests.conftest import make_config
from tests.support.app import free_tcp_port, run_app
from tests.support.escalation import RecordingNotifier, open_incident, recording, timeline
from tests.support.processes import descendants_of, wait_gone
from tests.support.waiting import eventually

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")

SLOW = (
    "import sys, time; open(sys.argv[1], 'a').write('started\\n'); time.sleep(3); "
    "print('rolled back checkout'); open(sys.argv[1], 'a').write('done\\n'); sys.exit(3)"
)
ACTION = {
    "name": "slow-rollback",
    "description": "takes a few seconds, says what it did, exits 3",
    "kind": "command",
    "argv": [sys.executable, "-c", SLOW, "{{ path }}"],
    "parameters": [{"name": "path"}],
    "timeout_s": 20,
}


def approve_now(store_url: str, incident_id: int, marker: Path) -> int:
    """The run as `RemediationService.schedule` writes it for an approval taken elsewhere (a
    click on another replica): due now, for the running scheduler's sweep to pick up."""
    definition = RemediationAction.model_validate(ACTION).model_dump(mode="json")
    now = datetime.now(UTC)
    engine = create_sync_engine(store_url)
    try:
        with engine.begin() as conn:
            return remediations.create_run(
                conn, incident_id=incident_id, action=ACTION["name"], definition=definition,
                parameters={"path": str(marker)}, reason="test", approved_by="U0ALICE",
                created_at=now, updated_at=now, phase=remediations.SCHEDULED, next_at=now, step=0,
                output="", approval_key=None,
            )  # fmt: skip
    finally:
        engine.dispose()


def stored_run(store_url: str, run_id: int) -> Any:
    engine = create_sync_engine(store_url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(RemediationRun).where(RemediationRun.id == run_id)).one()
    finally:
        engine.dispose()


async def test_a_kill_9_mid_run_then_restart_records_the_real_outcome(
    store_url: str, tmp_path: Path
) -> None:
    port = free_tcp_port()
    config = {
        "server": {"host": "127.0.0.1", "port": port},
        "store": {"url": store_url},
        "slack": {"mode": "console"},
        "llm": {"provider": "offline"},
        "escalation": {"sweep_interval_s": 0.3},
        "remediation": {"actions": [ACTION]},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FIREBREAK", "SLACK_"))}
    marker = tmp_path / "ran"

    def serve(name: str) -> subprocess.Popen[bytes]:
        with (tmp_path / f"{name}.log").open("wb") as log:
            firebreak = str(Path(sys.executable).parent / "firebreak")
            return subprocess.Popen(
                [firebreak, "serve", "--config", str(tmp_path / "config.yaml")],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip

    async def ready(client: httpx.AsyncClient) -> bool:
        try:
            return (await client.get("/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    def lines() -> list[str]:
        return marker.read_text().splitlines() if marker.exists() else []

    async def seen(line: str) -> bool:
        return line in lines()

    first = serve("first")
    second: subprocess.Popen[bytes] | None = None
    left: list[int] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            await eventually(lambda: ready(client), within=60)
            incident_id = await open_incident(client)
            run_id = await asyncio.to_thread(approve_now, store_url, incident_id, marker)
            await eventually(lambda: seen("started"), within=30)
            left = descendants_of(first.pid)  # the supervisor and the action
            assert left, "the action runs in processes of its own"
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)

            await eventually(lambda: seen("done"), within=30)  # it went on without Firebreak
            assert wait_gone(left, within=30) == [], "the supervisor ended once it recorded"
            run = await asyncio.to_thread(stored_run, store_url, run_id)
            assert (run.phase, run.ok) == (remediations.EXECUTING, False)  # nobody finished it yet
            assert "rolled back checkout" in run.output and "exit status 3" in run.output

            second = serve("second")
            await eventually(lambda: ready(client), within=60)

            async def executed() -> list[dict]:
                return await timeline(client, incident_id, "REMEDIATION_EXECUTED")

            events = await eventually(executed, within=30)
            await asyncio.sleep(1.0)  # a second record would show by now
            assert len(await executed()) == 1
        (event,) = events
        assert event["data"]["ok"] is False and event["data"]["recovered"] is True
        assert event["data"]["skipped"] is None and "unknown" not in event["message"]
        assert "rolled back checkout" in event["data"]["output"]
        assert "exit status 3" in event["data"]["output"]
        assert "slow-rollback" in event["message"] and "failed" in event["message"]
        assert lines() == ["started", "done"]  # it ran once
        run = await asyncio.to_thread(stored_run, store_url, run_id)
        assert (run.phase, run.ok, run.next_at) == (remediations.DONE, False, None)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=20)
        for pid in wait_gone(left, within=0):  # the test's own leftovers, by pid
            os.kill(pid, signal.SIGKILL)


async def test_a_graceful_stop_leaves_the_action_to_finish_and_be_recorded(
    store_url: str, tmp_path: Path
) -> None:
    """SIGTERM stops Firebreak within its grace, sooner than a slow action ends: the action is
    not killed half-way (a half-applied rollback is worse than a finished one); its outcome is
    recorded by the next start."""
    marker = tmp_path / "ran"
    slower = SLOW.replace("sleep(3)", "sleep(7)")  # past the scheduler's 5 s grace at stop
    slow = dict(ACTION, argv=[sys.executable, "-c", slower, "{{ path }}"])
    config = make_config(
        store_url, remediation={"actions": [slow]}, escalation={"sweep_interval_s": 0.3}
    )
    proposal = RemediationProposal(
        action="slow-rollback",
        parameters=[RemediationParameter(name="path", value=str(marker))],
        reason="because",
    )
    notifier = RecordingNotifier()
    async with run_app(config, parts=recording(notifier)) as app:
        incident_id = await open_incident(app.client)
        approval = ApprovedRemediation(incident_id, proposal, approved_by="U0ALICE")
        await app.runtime.remediations.schedule(approval)  # type: ignore[union-attr]
        await eventually(lambda: _holds(marker, "started\n"), within=30)
    assert "done" not in _read(marker), "stopped before the action ended"

    await eventually(lambda: _holds(marker, "done\n"), within=30)
    async with run_app(config, parts=recording(notifier)) as app:

        async def executed() -> list[dict]:
            return await timeline(app.client, incident_id, "REMEDIATION_EXECUTED")

        (event,) = await eventually(executed, within=30)
    assert event["data"]["recovered"] is True and event["data"]["ok"] is False
    assert "exit status 3" in event["data"]["output"]
    assert _read(marker) == "started\ndone\n"


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


async def _holds(path: Path, text: str) -> bool:
    return text in _read(path)
