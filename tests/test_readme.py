"""The README's quick start, followed literally: its first command, in a fresh copy of the
repository (only what git tracks, so untracked junk cannot make it pass), with no virtual
environment yet and nothing from this test run's environment that the README does not ask for.

Slow (it creates a virtual environment and pip-installs Firebreak into it, from pip's cache
when warm), so it is ONE test and marked `slow`; it runs by default, `-m "not slow"` skips it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SECRET_IN_SAMPLE_LOG = "Sup3rS3cret-pw"  # examples/demo/checkout.log leaks it on purpose


def quick_start_commands(text: str) -> list[str]:
    """The commands of the first fenced code block: lines that are not blank or comments."""
    block = re.search(r"^```[a-z]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert block is not None, "README.md has no code block"
    return [
        line.strip()
        for line in block.group(1).splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def test_quick_start_is_the_two_commands() -> None:
    commands = quick_start_commands(README.read_text())
    assert commands[:2] == ["./scripts/demo.sh", "./scripts/test.sh"]


def fresh_copy(destination: Path) -> None:
    tracked = (
        subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True)
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, tracked):
        source = ROOT / name
        if not source.is_file():  # deleted in the working tree but still tracked
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def clean_environment() -> dict[str, str]:
    """The caller's environment minus this test run's virtual environment and any Firebreak
    or Slack/LLM setting: a new user's shell."""
    venv_bin = str(Path(sys.executable).parent)
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin]
    drop = ("FIREBREAK", "SLACK_", "OPENAI_", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PATH"] = os.pathsep.join(path)
    return env


@pytest.mark.slow
def test_quick_start_demo_in_a_fresh_copy(tmp_path: Path) -> None:
    demo_command = quick_start_commands(README.read_text())[0]
    repo = tmp_path / "firebreak"
    fresh_copy(repo)
    assert not (repo / ".venv").exists()

    result = subprocess.run(
        ["bash", "-c", demo_command],
        cwd=repo,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=1500,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert (repo / ".venv" / "bin" / "firebreak").exists()  # the demo made its own venv

    # The incident card (console rendering of the Slack conversation)...
    assert "HighErrorRate" in result.stdout and "checkout" in result.stdout
    for button in ("Acknowledge", "Escalate", "Resolve"):
        assert button in result.stdout
    # ...the RCA from the sample evidence...
    assert "payment gateway timeout" in result.stdout
    # ...and the timeline, in the contract's vocabulary.
    for event in ("INCIDENT_CREATED", "ROOT_CAUSE_GENERATED", "ACKNOWLEDGED", "ESCALATED"):
        assert event in result.stdout, event
    assert SECRET_IN_SAMPLE_LOG not in output  # the sample log's leaked password stays redacted
