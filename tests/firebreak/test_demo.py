"""`firebreak demo` as a new user runs it: its outcome, not its timing."""

from __future__ import annotations

import json
import subprocess
import sys


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "firebreak.cli", "demo", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "100"},
    )


def test_demo_json_is_the_acknowledged_escalated_incident() -> None:
    result = run_demo("--json")
    assert result.returncode == 0, result.stderr
    incident = json.loads(result.stdout)
    assert incident["status"] == "acknowledged"
    assert incident["acknowledged_by"] == "U0ONCALL1"
    assert incident["escalation_level"] == 2
    assert incident["slack"]["ts"], "the card was posted (to the console)"
    analysis = incident["analysis"]
    assert analysis["execution_status"] in {"COMPLETED", "RECOVERED_FALLBACK"}
    assert "pool" in analysis["root_cause"].lower()
    assert analysis["evidence"]


def test_demo_shows_the_conversation_and_the_timeline() -> None:
    result = run_demo()
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in (
        "Alertmanager posts a firing alert",
        "Slack #C0INCIDENTS",
        "Acknowledge",
        "Root-cause analysis",
        "Escalation level 2",
        "POST /slack/events (block_actions) → 200",
        "The audit timeline",
        "INCIDENT_CREATED",
        "ROOT_CAUSE_GENERATED",
        "ESCALATED",
        "ACKNOWLEDGED",
    ):
        assert expected in out, expected
    assert "Acknowledged by: @U0ONCALL1" in out
    assert "Sup3rS3cret-pw" not in out  # the password leaked into the sample log
