"""examples/local-stack: the shipped configs are valid for the real tools that read them.

(The recipe itself, `run.sh`, uses fixed ports and was verified by hand end to end; see the
README section "A real alert on your laptop".)"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from firebreak.config import load_config

STACK = Path(__file__).resolve().parents[2] / "examples" / "local-stack"


@pytest.fixture
def stack_copy(tmp_path: Path) -> Path:
    for name in ("prometheus.yml", "rules.yml", "alertmanager.yml", "firebreak.yaml"):
        shutil.copy(STACK / name, tmp_path / name)
    (tmp_path / "webhook-token").write_text("token\n")  # run.sh writes it
    return tmp_path


@pytest.mark.parametrize(
    "argv",
    [
        ["promtool", "check", "config", "prometheus.yml"],
        ["amtool", "check-config", "alertmanager.yml"],
    ],
)
def test_prometheus_and_alertmanager_accept_the_configs(stack_copy: Path, argv: list[str]) -> None:
    if shutil.which(argv[0]) is None:
        pytest.fail(f"{argv[0]} missing: install Debian's prometheus / prometheus-alertmanager")
    result = subprocess.run(argv, cwd=stack_copy, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_firebreak_config_is_valid_and_matches_the_stack(stack_copy: Path) -> None:
    config = load_config(stack_copy / "firebreak.yaml")
    assert config.slack.mode == "console"
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8080)
    assert config.sources.metrics[0].url == "http://127.0.0.1:19090"
    alertmanager = (stack_copy / "alertmanager.yml").read_text()
    assert "url: http://127.0.0.1:8080/webhooks/alertmanager" in alertmanager
    assert "send_resolved: true" in alertmanager
    assert (STACK / "run.sh").stat().st_mode & 0o111  # executable
