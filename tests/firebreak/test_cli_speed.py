"""The command line starts quickly: `--help` and the read commands load none of the heavy
libraries (LLM graphs, Slack, Kubernetes, the scheduler, the HTTP server), which only the
commands that use them import. Checked by what a fresh interpreter has imported, not by a
timing, which a busy machine would make flaky."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from firebreak.cli import STATUSES
from firebreak.store.migrate import upgrade
from firebreak.store.schemas import IncidentStatus

HEAVY = {
    "langgraph",
    "langchain",
    "langchain_core",
    "langchain_openai",
    "langchain_ollama",
    "openai",
    "slack_sdk",
    "slack_bolt",
    "kubernetes",
    "aiohttp",
    "icalendar",
    "apscheduler",
    "matplotlib",
    "starlette",
    "uvicorn",
    "alembic",
    "psycopg",
}

SCRIPT = """
import contextlib, io, json, sys
from firebreak.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def imported(*args: str) -> set[str]:
    """The top-level packages a fresh interpreter holds after `firebreak ARGS`."""
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_help_imports_no_heavy_module() -> None:
    loaded = imported("--help")
    assert "firebreak" in loaded  # the check can fail: it sees what the command imported
    assert loaded & (HEAVY | {"sqlalchemy"}) == set()
    assert imported("incidents", "--help") & (HEAVY | {"sqlalchemy"}) == set()


def test_read_commands_import_only_the_store(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    upgrade(url)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"store": {"url": url}}))
    for args in (("incidents",), ("incident", "1")):
        loaded = imported(*args, "--config", str(config))
        assert "sqlalchemy" in loaded, args
        assert loaded & HEAVY == set(), args


def test_the_status_choices_are_the_store_statuses() -> None:
    assert STATUSES == tuple(status.value for status in IncidentStatus)
