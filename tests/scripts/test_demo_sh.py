"""`scripts/demo.sh` installs only when `pyproject.toml` changed since its last install.

The script runs for real in a copy of the repository's layout; the virtual environment's
`python` and `firebreak` are stand-ins that record how they were called (a real `pip install`
takes minutes and needs the network, and is not what is under test here).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

RECORDER = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "$(dirname "$0")/../calls.log"
"""


def make_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "demo.sh", repo / "scripts" / "demo.sh")
    (repo / "pyproject.toml").write_text('[project]\nname = "firebreak"\n')
    bin_dir = repo / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("python", "firebreak"):
        (bin_dir / name).write_text(RECORDER)
        (bin_dir / name).chmod(0o755)
    return repo


def run_demo(repo: Path) -> list[str]:
    log = repo / ".venv" / "calls.log"
    log.unlink(missing_ok=True)
    result = subprocess.run(
        ["bash", str(repo / "scripts" / "demo.sh"), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return log.read_text().splitlines()


def test_reinstalls_only_when_pyproject_changed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    install = "python -m pip install -q -e ."
    first = run_demo(repo)
    assert install in first and first[-1] == "firebreak demo --json"
    assert (repo / ".venv" / ".firebreak-install-stamp").is_file()

    assert run_demo(repo) == ["firebreak demo --json"]  # unchanged: straight to the demo

    (repo / "pyproject.toml").write_text('[project]\nname = "firebreak"\nversion = "2"\n')
    assert install in run_demo(repo)
    assert run_demo(repo) == ["firebreak demo --json"]
