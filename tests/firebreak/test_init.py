"""`firebreak init` probes real HTTP servers on 127.0.0.1 (the real Prometheus and Alertmanager,
small servers answering Loki's, Ollama's and Elasticsearch's endpoints as those do) and writes
a file that `load_config` loads with exactly what was found."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from firebreak.config import load_config
from firebreak.init import DEFAULT_URLS, LOCAL_STACK_URLS, InitOptions, init_main
from tests.fakes.llm_servers import closed_port_url
from tests.support.http import Answer, Seen, serving
from tests.support.promstack import run_alertmanager, run_prometheus

FIREBREAK = Path(sys.executable).parent / "firebreak"

Routes = dict[str, tuple[int, str]]  # path -> (status, body)


@contextmanager
def http_server(routes: Routes) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 answering `routes`, 404 for anything else."""

    def respond(request: Seen) -> Answer:
        status, body = routes.get(request.path, (404, "404 page not found\n"))
        kind = "application/json" if body.startswith("{") else "text/plain"
        return status, kind, body.encode()

    with serving(respond) as url:
        yield url


LOKI: Routes = {"/ready": (200, "ready\n")}
OLLAMA: Routes = {
    "/api/tags": (
        200,
        json.dumps(
            {
                "models": [
                    {"name": "qwen2.5:7b", "model": "qwen2.5:7b", "size": 1},
                    {"name": "llama3.1:8b", "model": "llama3.1:8b", "size": 1},
                ]
            }
        ),
    )
}
ELASTICSEARCH: Routes = {
    "/": (
        200,
        json.dumps(
            {
                "name": "es-1",
                "cluster_name": "logs",
                "version": {"number": "8.15.0", "build_flavor": "default"},
                "tagline": "You Know, for Search",
            }
        ),
    )
}


def dead() -> str:
    return closed_port_url("ollama")


def run_init(
    tmp_path: Path,
    defaults: dict[str, str],
    alternates: dict[str, str] | None = None,
    **options: Any,
) -> tuple[int, str]:
    """`firebreak init` against `defaults`; the local-stack alternates only when given, so a
    stack running on this machine cannot change what a test finds."""
    shown = io.StringIO()
    console = Console(file=shown, width=200, color_system=None)
    path = options.pop("path", tmp_path / "config.yaml")
    code = init_main(
        InitOptions(path=path, **options),
        console,
        defaults=defaults,
        alternates=alternates or {},
    )
    return code, shown.getvalue()


def test_everything_found_is_configured(tmp_path: Path) -> None:
    with (
        http_server(LOKI) as loki,
        http_server(OLLAMA) as ollama,
        http_server(ELASTICSEARCH) as es,
        run_prometheus(tmp_path) as prometheus,
        run_alertmanager(tmp_path, webhook_url="http://127.0.0.1:9/hook") as alertmanager,
    ):
        defaults = {
            "loki": loki,
            "prometheus": prometheus,
            "alertmanager": alertmanager,
            "ollama": ollama,
            "elasticsearch": es,
        }
        code, out = run_init(tmp_path, defaults)
    assert code == 0, out
    for name in defaults:
        assert f"✓ {name}" in out, out
    assert "prometheus 2." in out or "prometheus 3." in out  # the real one's buildinfo
    assert "alertmanager 0." in out
    assert "2 model(s): qwen2.5:7b, llama3.1:8b" in out

    config = load_config(tmp_path / "config.yaml")
    assert (config.llm.provider, config.llm.model, config.llm.base_url) == (
        "ollama",
        "llama3.1:8b",  # the default model, since it is pulled
        ollama,
    )
    [loki_source, es_source] = config.sources.logs
    assert (loki_source.type, loki_source.url) == ("loki", loki)
    assert loki_source.query == '{service="{{ labels.service }}"}'  # type: ignore[union-attr]
    assert (es_source.type, es_source.url) == ("elasticsearch", es)
    assert [(m.name, m.url) for m in config.sources.metrics] == [("prometheus", prometheus)]
    assert config.slack.alertmanager_url == alertmanager
    assert config.slack.mode == "console" and config.store.url.startswith("sqlite+aiosqlite")
    text = (tmp_path / "config.yaml").read_text()
    assert "# Loki: found by init: ready" in text and "SLACK_BOT_TOKEN" in text


def test_nothing_running_gives_a_working_offline_config(tmp_path: Path) -> None:
    defaults = {name: dead() for name in DEFAULT_URLS}
    code, out = run_init(tmp_path, defaults)
    assert code == 0
    assert out.count("cannot connect") == len(DEFAULT_URLS)
    config = load_config(tmp_path / "config.yaml")
    assert config.server.host == "127.0.0.1"  # beyond this machine only by choice, with tokens
    assert config.llm.provider == "offline"
    assert config.sources.logs == [] and config.sources.metrics == []
    assert config.slack.alertmanager_url is None
    [policy] = config.escalation.policies  # nobody is left unpaged by accident
    assert policy.match == {} and [level.notify for level in policy.levels] == [["C0INCIDENTS"]]
    assert config.escalation.paging_gap() is None
    assert "the RCA will have no evidence; add one under sources.logs" in out
    assert "alerts page the incidents channel C0INCIDENTS (a post with @here)" in out


def test_page_names_who_alerts_page(tmp_path: Path) -> None:
    for target, words in (
        ("U0ALICE", "the Slack user U0ALICE"),
        ("S0SRE", "the Slack user group S0SRE"),
    ):
        result = cli("--no-probe", "--force", "--page", target, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"alerts page {words}" in result.stdout
        [policy] = load_config(tmp_path / "config.yaml").escalation.policies
        assert [level.notify for level in policy.levels] == [[target]]
    refused = cli("--no-probe", "--force", "--page", "#oncall", cwd=tmp_path)
    assert refused.returncode == 2 and "not a Slack user id (U…) or user group id" in refused.stderr


def test_a_channel_name_is_said_to_page_nobody(tmp_path: Path) -> None:
    """An escalation level needs a channel id: with a name, init says alerts page nobody."""
    result = cli("--no-probe", "--slack-channel", "#incidents", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "alerts page nobody: slack.channel #incidents is not a channel id" in result.stdout
    assert load_config(tmp_path / "config.yaml").escalation.policies == []


def test_lookalikes_are_not_taken_for_the_real_thing(tmp_path: Path) -> None:
    """A web server on Prometheus' port that is not Prometheus, an Ollama with no model and an
    Elasticsearch asking for credentials are reported, not configured."""
    with (
        http_server({"/": (200, "<html>dev server</html>")}) as impostor,
        http_server({"/api/tags": (200, '{"models": []}')}) as empty_ollama,
        http_server({"/": (401, '{"error": "security_exception"}')}) as secured_es,
    ):
        defaults = {
            "prometheus": impostor,
            "ollama": empty_ollama,
            "elasticsearch": secured_es,
            "loki": dead(),
            "alertmanager": dead(),
        }
        code, out = run_init(tmp_path, defaults)
    assert code == 0
    assert "prometheus" in out and "/-/ready answered HTTP 404" in out
    assert "no model pulled" in out and "asks for credentials" in out
    config = load_config(tmp_path / "config.yaml")
    assert config.sources.metrics == [] and config.sources.logs == []
    assert config.llm.provider == "offline"
    assert "no model pulled" in (tmp_path / "config.yaml").read_text()


def test_an_existing_file_is_kept_unless_forced(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("slack: {mode: console}\n")
    defaults = {name: dead() for name in DEFAULT_URLS}
    code, out = run_init(tmp_path, defaults)
    assert (
        code == 1
        and "exists; nothing written (--force replaces it, --path my-config.yaml writes another)"
        in out
    )
    assert path.read_text() == "slack: {mode: console}\n"
    code, _ = run_init(tmp_path, defaults, force=True, slack_channel="C0OPS")
    assert code == 0 and load_config(path).slack.channel == "C0OPS"
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREBREAK")}
    return subprocess.run(
        [str(FIREBREAK), "init", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**env, "COLUMNS": "200"},
    )


def test_cli_flags_cover_what_probing_cannot_know(tmp_path: Path) -> None:
    result = cli(
        "--no-probe",
        "--path",
        "etc/firebreak.yaml",
        "--slack-mode",
        "http",
        "--slack-channel",
        "C0PAYMENTS",
        "--public-url",
        "https://firebreak.example.com",
        "--store-url",
        "postgresql+asyncpg://firebreak@db.internal/firebreak",
        "--prometheus-url",
        "http://prometheus.monitoring:9090",
        "--loki-url",
        "http://loki.monitoring:3100/",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "written anyway: given by flag" in result.stdout
    config = load_config(tmp_path / "etc" / "firebreak.yaml")
    assert (config.slack.mode, config.slack.channel) == ("http", "C0PAYMENTS")
    assert str(config.server.public_url) == "https://firebreak.example.com/"
    assert config.store.url == "postgresql+asyncpg://firebreak@db.internal/firebreak"
    assert [m.url for m in config.sources.metrics] == ["http://prometheus.monitoring:9090"]
    assert [s.url for s in config.sources.logs] == ["http://loki.monitoring:3100"]  # type: ignore[union-attr]
    assert config.llm.provider == "offline"
    text = (tmp_path / "etc" / "firebreak.yaml").read_text()
    assert "did not answer init: not probed" in text


@pytest.mark.parametrize(
    ("flag", "value", "problem"),
    [
        ("--store-url", "mysql://db/x", "store.url: Value error, must start with"),
        ("--public-url", "not a url", "server.public_url: Input should be a valid URL"),
    ],
)
def test_cli_bad_flag_writes_nothing(tmp_path: Path, flag: str, value: str, problem: str) -> None:
    result = cli("--no-probe", flag, value, cwd=tmp_path)
    assert result.returncode == 2
    assert problem in result.stdout and "nothing written" in result.stdout
    assert not (tmp_path / "config.yaml").exists()


def test_cli_quotes_values_that_yaml_would_misread(tmp_path: Path) -> None:
    """A channel like `no` or `0123` is a string in the file, not a boolean or a number."""
    for channel in ("no", "0123", "C0'QUOTED", "#incidents: [x]"):
        result = cli("--no-probe", "--force", "--slack-channel", channel, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert load_config(tmp_path / "config.yaml").slack.channel == channel


def test_the_local_stack_ports_are_tried_when_the_usual_ones_do_not_answer(
    tmp_path: Path,
) -> None:
    with (
        run_prometheus(tmp_path) as prometheus,
        run_alertmanager(tmp_path, webhook_url="http://127.0.0.1:9/hook") as alertmanager,
    ):
        defaults = {name: dead() for name in DEFAULT_URLS}
        stack = {"prometheus": prometheus, "alertmanager": alertmanager, "loki": dead()}
        code, out = run_init(tmp_path, defaults, alternates=stack)
    assert code == 0, out
    assert f"✓ prometheus    {prometheus}" in out and f"✓ alertmanager  {alertmanager}" in out
    assert "· loki" in out  # neither answered: the first answer stays
    config = load_config(tmp_path / "config.yaml")
    assert [(m.name, m.url) for m in config.sources.metrics] == [("prometheus", prometheus)]
    assert config.slack.alertmanager_url == alertmanager
    assert "RCA will have no evidence" not in out


def test_the_local_stack_ports_are_the_readmes() -> None:
    assert LOCAL_STACK_URLS == {
        "prometheus": "http://localhost:19090",
        "alertmanager": "http://localhost:19093",
    }
