"""Remediation executors: argv templating without a shell, HTTP with encoding, timeouts."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firebreak.tools.actions import (
    ActionError,
    render_argv,
    render_headers,
    render_url,
    run_action,
    run_command,
    validate_parameters,
)
from firebreak.tools.config import RemediationAction
from tests.support.http import Answer, Seen, serving

PRINT_ARGV = "import json, sys; print(json.dumps(sys.argv[1:]))"


def command(argv: list[str], pattern: str = ".*", **extra: Any) -> RemediationAction:
    return RemediationAction(
        name="cmd",
        description="d",
        kind="command",
        argv=argv,
        parameters=[{"name": "target", "pattern": pattern}],
        **extra,
    )


async def test_a_shell_metacharacter_argument_stays_one_argv_item(tmp_path: Path) -> None:
    victim = tmp_path / "x"
    victim.mkdir()
    hostile = f"; rm -rf {victim}"
    action = command([sys.executable, "-c", PRINT_ARGV, "--name={{ target }}", "{{ target }}"])

    ok, output = await run_action(action, {"target": hostile})

    assert ok, output
    assert json.loads(output.splitlines()[0]) == [f"--name={hostile}", hostile]
    assert victim.is_dir()  # nothing was interpreted by a shell


async def test_parameters_are_validated_against_their_pattern(tmp_path: Path) -> None:
    action = command([sys.executable, "-c", PRINT_ARGV, "{{ target }}"], pattern="^[a-z-]+$")
    assert validate_parameters(action, {"target": "checkout-api"}) == {"target": "checkout-api"}
    for bad in (
        {"target": "checkout; rm -rf /"},
        {"target": "a\nb"},
        {},
        {"target": "a", "x": "b"},
    ):
        with pytest.raises(ActionError):
            validate_parameters(action, bad)
    ok, output = await run_action(action, {"target": "x; touch /tmp/owned"})
    assert not ok and "does not match" in output


@pytest.mark.parametrize("value", ["--help", "-rf", "-", "--", "-n=kube-system"])
async def test_a_value_starting_with_a_dash_never_runs_whatever_the_pattern(
    tmp_path: Path, value: str
) -> None:
    """A placeholder never becomes an option: even a pattern that admits anything (`.*`) and an
    argv with the placeholder standing alone do not let `--help` or `-rf` through."""
    ran = tmp_path / "ran"
    script = "import sys; open(sys.argv[1], 'w').write(repr(sys.argv[2:]))"
    action = command([sys.executable, "-c", script, str(ran), "{{ target }}"], pattern=".*")

    with pytest.raises(ActionError, match="starts with '-'"):
        validate_parameters(action, {"target": value})
    ok, output = await run_action(action, {"target": value})

    assert not ok and "starts with '-'" in output and "option" in output
    assert not ran.exists()
    ok, output = await run_action(action, {"target": f"x{value}"})  # inside a value: an operand
    assert ok and ran.read_text() == repr([f"x{value}"])


def test_the_default_pattern_refuses_a_leading_dash() -> None:
    action = RemediationAction(
        name="restart",
        description="d",
        kind="command",
        argv=["systemctl", "restart", "{{ unit }}"],
        parameters=[{"name": "unit"}],
    )
    pattern = action.parameters[0].pattern
    for fine in ("checkout-api", "payments.service", "ns/pod-1", "host:8080", "a_b", "x" * 128):
        assert validate_parameters(action, {"unit": fine}) == {"unit": fine}
    for bad in ("-rf", "--help", "-", "", "x" * 129, "a b"):
        assert re.fullmatch(pattern, bad) is None, bad
        with pytest.raises(ActionError):
            validate_parameters(action, {"unit": bad})


def test_templates_substitute_text_only() -> None:
    assert render_argv(
        ["kubectl", "rollout", "restart", "deploy/{{ target }}"], {"target": "a b"}
    ) == [
        "kubectl",
        "rollout",
        "restart",
        "deploy/a b",
    ]
    with pytest.raises(ActionError):
        render_argv(["{{ nope }}"], {"target": "x"})
    # URL values are percent-encoded: they cannot add path segments or query parameters
    assert (
        render_url("http://h/api/{{ target }}?x=1", {"target": "../admin?y=2&z"})
        == "http://h/api/..%2Fadmin%3Fy%3D2%26z?x=1"
    )
    with pytest.raises(ActionError):
        render_headers({"X-Target": "{{ target }}"}, {"target": "a\r\nInjected: yes"})


async def test_a_command_that_overruns_is_killed() -> None:
    began = time.monotonic()
    ok, output = await run_command(
        [sys.executable, "-c", "import time; time.sleep(30)"], timeout_s=0.5
    )
    assert not ok and "timed out" in output
    assert time.monotonic() - began < 5


async def test_commands_do_not_inherit_the_bots_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-secret-value")
    ok, output = await run_command(
        [sys.executable, "-c", "import os; print(os.environ.get('SLACK_BOT_TOKEN'))"], timeout_s=10
    )
    assert ok and output.splitlines()[0] == "None"


async def test_a_missing_program_is_a_failure_not_an_exception() -> None:
    ok, output = await run_command(["/nonexistent/program"], timeout_s=5)
    assert not ok and "could not start" in output


SEEN: list[Seen] = []  # reset by the fixture: the requests the action server received


def _answer(seen: Seen) -> Answer:
    """POST: recorded and accepted (refused for a `fail` path); GET: answered after 2 s."""
    if seen.method == "GET":
        time.sleep(2)
        return 200, "text/plain", b""
    SEEN.append(seen)
    return (500 if "fail" in seen.path else 202), "text/plain", b"accepted"


@pytest.fixture
def http_server() -> Iterator[str]:
    SEEN.clear()
    with serving(_answer) as url:
        yield url


def http_action(url: str, **extra: Any) -> RemediationAction:
    return RemediationAction(
        name="restart",
        description="d",
        kind="http",
        url=url,
        headers={"X-Service": "{{ target }}"},
        body='{"service": "{{ target }}", "reason": "firebreak"}',
        parameters=[{"name": "target", "pattern": r'^[a-z"\\-]+$'}],
        **extra,
    )


async def test_http_action_sends_an_encoded_request(http_server: str) -> None:
    action = http_action(http_server + "/restart/{{ target }}")
    ok, output = await run_action(action, {"target": 'check"out'})
    assert ok and output.startswith("HTTP 202")
    request = SEEN[0]
    assert request.path == "/restart/check%22out"
    assert json.loads(request.body) == {"service": 'check"out', "reason": "firebreak"}
    assert request.headers["Content-Type"] == "application/json"

    ok, output = await run_action(http_action(http_server + "/fail"), {"target": "x"})
    assert not ok and output.startswith("HTTP 500")


async def test_http_action_times_out(http_server: str) -> None:
    action = http_action(http_server + "/slow", method="GET", timeout_s=0.3)
    began = time.monotonic()
    ok, output = await run_action(action, {"target": "x"})
    assert not ok and ("timed out" in output or "Timeout" in output)
    assert time.monotonic() - began < 1.5
