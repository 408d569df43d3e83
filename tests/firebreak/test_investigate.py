"""`firebreak investigate --sample`: the shipped sample incident over its own sample log and
metrics, on a fresh machine (no config file, no sources, the offline analyzer)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FIREBREAK = Path(sys.executable).parent / "firebreak"
SECRET = "Sup3rS3cret-pw"  # the leaked database password in examples/demo/checkout.log


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FIREBREAK", "OPENAI"))}
    return subprocess.run(
        [str(FIREBREAK), "investigate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )


def test_sample_without_any_configuration(tmp_path: Path) -> None:
    result = run("--sample", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    analysis = json.loads(result.stdout)
    assert analysis["execution_status"] == "COMPLETED"
    root_cause = analysis["root_cause"].lower()
    assert "payment gateway timeout" in root_cause and "deploy checkout v2.4.1" in root_cause
    assert {item["kind"] for item in analysis["evidence"]} == {"log", "metric"}
    assert SECRET not in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing left behind, no store created here


def test_sample_and_alert_exclude_each_other(tmp_path: Path) -> None:
    both = run("--sample", "--alert", "x.json", cwd=tmp_path)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    neither = run(cwd=tmp_path)
    assert neither.returncode == 2 and "one of the arguments --alert --sample" in neither.stderr
