"""`firebreak check` against real servers: Prometheus and Alertmanager (Debian binaries), the
scripted LLM servers, the Slack Web API fake, SQLite and PostgreSQL; dead ports for the red
lines; the CLI as a subprocess for exit codes and output."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from rich.console import Console

from firebreak.check import CheckResult, print_results, run_checks
from firebreak.config import Config, Secrets
from firebreak.sample import materialise, serve_sample_prometheus
from firebreak.store.migrate import upgrade
from tests.fakes.k8s_api import FakeKubeApi
from tests.fakes.llm_servers import ScriptedLLMServer, closed_port_url
from tests.fakes.slack_api import FakeSlackApi
from tests.support.http import Answer, Seen, serving
from tests.support.promstack import run_alertmanager, run_prometheus

FIREBREAK = Path(sys.executable).parent / "firebreak"


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def dead_url() -> str:
    return closed_port_url("ollama")  # http://127.0.0.1:PORT with nothing listening


@pytest.fixture
async def loki_and_es() -> AsyncIterator[tuple[str, str]]:
    """Loki and Elasticsearch look-alikes answering the two endpoints the check uses, in the
    shapes those servers document (`/ready` → "ready"; `GET /` → the cluster banner)."""

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ready\n")

    async def banner(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "name": "es-1",
                "cluster_name": "logs",
                "version": {"number": "8.15.0", "build_flavor": "default"},
                "tagline": "You Know, for Search",
            }
        )

    loki = web.Application()
    loki.router.add_get("/ready", ready)
    es = web.Application()
    es.router.add_get("/", banner)
    async with TestServer(loki, host="127.0.0.1") as l_srv, TestServer(es, host="127.0.0.1") as e:
        yield str(l_srv.make_url("")).rstrip("/"), str(e.make_url("")).rstrip("/")


async def test_everything_green_against_real_servers(
    tmp_path: Path, store_url: str, loki_and_es: tuple[str, str]
) -> None:
    await asyncio.to_thread(upgrade, store_url)
    (tmp_path / "app.log").write_text("2026-11-22T10:00:00Z INFO hello\n")
    loki_url, es_url = loki_and_es
    with (
        FakeSlackApi() as slack,
        ScriptedLLMServer("openai") as llm,
        run_prometheus(tmp_path) as prometheus,
    ):
        config = Config(
            store={"url": store_url},
            slack={"mode": "http", "api_base_url": slack.base_url},
            llm={"provider": "openai", "model": "test-model", "base_url": llm.base_url},
            sources={
                "logs": [
                    {"name": "app", "type": "file", "path": str(tmp_path / "*.log")},
                    {"name": "loki", "type": "loki", "url": loki_url},
                    {"name": "es", "type": "elasticsearch", "url": es_url},
                ],
                "metrics": [{"name": "prom", "type": "prometheus", "url": prometheus}],
            },
        )
        secrets = Secrets(slack_bot_token=slack.token, slack_signing_secret="shh-signing")
        results = await run_checks(config, secrets, "test config: valid")
        assert [c.method for c in slack.calls()] == ["auth.test"]
        assert [r.path for r in llm.requests] == ["/v1/models"]

    lines = by_name(results)
    assert [r.name for r in results] == [
        "config", "access", "store", "slack", "llm", "logs:app", "logs:loki", "logs:es",
        "metrics:prom",
    ]  # fmt: skip
    assert all(r.ok for r in results), results
    assert "schema at head" in lines["store"].detail
    assert "auth.test ok" in lines["slack"].detail and "U0FIREBREAK" in lines["slack"].detail
    assert "reachable, 1 models" in lines["llm"].detail
    assert lines["logs:app"].detail.startswith(f"1 file matches {tmp_path / '*.log'}")
    assert "ready" in lines["logs:loki"].detail
    assert "8.15.0" in lines["logs:es"].detail and "cluster logs" in lines["logs:es"].detail
    assert lines["metrics:prom"].detail.startswith("prometheus ")


async def test_dead_ports_are_red_with_the_reason(tmp_path: Path) -> None:
    dead = dead_url()
    config = Config(
        store={"url": f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"},
        slack={"mode": "http", "api_base_url": dead + "/api/"},
        llm={"provider": "ollama", "base_url": dead},
        sources={
            "logs": [
                {"name": "loki", "type": "loki", "url": dead},
                {"name": "es", "type": "elasticsearch", "url": dead},
                {"name": "app", "type": "file", "path": str(tmp_path / "nothing-*.log")},
            ],
            "metrics": [{"name": "prom", "type": "prometheus", "url": dead}],
        },
    )
    secrets = Secrets(slack_bot_token="xoxb-1", slack_signing_secret="s")
    results = by_name(await run_checks(config, secrets, "valid"))
    assert results["store"].ok and "not created yet" in results["store"].detail
    assert not (tmp_path / "new.db").exists()  # a check never creates the store
    for name in ("slack", "llm", "logs:loki", "logs:es", "metrics:prom"):
        assert not results[name].ok, results[name]
    assert results["logs:loki"].detail.startswith(f"loki at {dead}: cannot connect")
    assert results["metrics:prom"].detail.startswith(f"prometheus at {dead}: cannot connect")
    assert results["logs:app"].detail == f"no file matches {tmp_path / 'nothing-*.log'}"


async def test_slack_modes_and_missing_tokens(tmp_path: Path) -> None:
    store = {"url": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"}

    async def slack_line(mode: str, secrets: Secrets, **slack: Any) -> CheckResult:
        config = Config(store=store, slack={"mode": mode, **slack})
        return by_name(await run_checks(config, secrets, "valid"))["slack"]

    console = await slack_line("console", Secrets())
    assert console.ok and console.detail == "console mode: no Slack needed"

    http = await slack_line("http", Secrets())
    assert not http.ok
    assert (
        http.detail == "http mode needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET in the environment"
    )

    socket = await slack_line("socket", Secrets(slack_bot_token="xoxb-1"))
    assert not socket.ok and socket.detail == "socket mode needs SLACK_APP_TOKEN in the environment"

    with FakeSlackApi() as slack:
        wrong = await slack_line(
            "socket",
            Secrets(slack_bot_token="xoxb-wrong", slack_app_token="xapp-1"),
            api_base_url=slack.base_url,
        )
        good = await slack_line(
            "socket",
            Secrets(slack_bot_token=slack.token, slack_app_token="xapp-1"),
            api_base_url=slack.base_url,
        )
    assert not wrong.ok and wrong.detail.endswith(": invalid_auth")
    assert good.ok and good.detail.startswith("socket mode: auth.test ok")


async def test_ollama_and_offline_llm(tmp_path: Path) -> None:
    store = {"url": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"}
    offline = by_name(await run_checks(Config(store=store), Secrets(), "valid"))["llm"]
    assert offline.ok and offline.detail.startswith("offline analyzer")
    with ScriptedLLMServer("ollama", model="llama3.1:8b") as ollama:
        config = Config(store=store, llm={"provider": "ollama", "base_url": ollama.base_url})
        line = by_name(await run_checks(config, Secrets(), "valid"))["llm"]
    assert line.ok and "reachable" in line.detail and "not listed" not in line.detail


async def test_store_behind_head_is_red(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    await asyncio.to_thread(upgrade, url, "0001")
    line = by_name(await run_checks(Config(store={"url": url}), Secrets(), "valid"))["store"]
    assert not line.ok
    assert "run `firebreak db upgrade`" in line.detail and "schema at 0001" in line.detail


async def test_a_store_never_migrated_is_green(store_url: str, tmp_path: Path) -> None:
    """An empty PostgreSQL database (or an empty SQLite file) is what a first `serve`
    migrates: not a failure. Tables of another application sharing it are mentioned."""
    from sqlalchemy import create_engine, text

    from firebreak.store.db import sync_url

    engine = create_engine(sync_url(store_url))
    with engine.connect():  # on SQLite this creates the (empty) file
        pass
    config = Config(store={"url": store_url})
    line = by_name(await run_checks(config, Secrets(), "valid"))["store"]
    assert line.ok, line
    assert line.detail.endswith(
        ": reachable, not migrated yet (`firebreak serve` or `firebreak db upgrade` will)"
    )
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE other_app (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    line = by_name(await run_checks(config, Secrets(), "valid"))["store"]
    assert line.ok and line.detail.endswith("; it already holds 1 other table(s): other_app")

    (tmp_path / "c.yaml").write_text(json.dumps({"store": {"url": store_url}}))
    code, out, err = await run_cli("check", "--config", str(tmp_path / "c.yaml"))
    assert code == 0, out + err
    assert "not migrated yet" in out


async def test_sample_prometheus_passes_the_check(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    stack = materialise(tmp_path, datetime.now(UTC))
    async with serve_sample_prometheus(stack.series) as url:
        config = Config(
            store={"url": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"},
            sources={"metrics": [{"name": "sample", "type": "prometheus", "url": url}]},
        )
        line = by_name(await run_checks(config, Secrets(), "valid"))["metrics:sample"]
    assert line.ok and line.detail == f"prometheus firebreak-sample at {url}"


def test_output_is_one_line_per_check_even_on_a_narrow_terminal() -> None:
    console = Console(width=30, record=True, color_system=None)
    long = "x" * 200
    print_results([CheckResult("config", True, long), CheckResult("logs:a", False, long)], console)
    lines = console.export_text().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("✓ config  ") and lines[1].startswith("✗ logs:a  ")


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(FIREBREAK),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "80", **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_green_and_red_exit_codes_and_no_secrets(tmp_path: Path) -> None:
    (tmp_path / "app.log").write_text("2026-11-22T10:00:00Z INFO hello\n")
    good = {
        "store": {"url": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"},
        "slack": {"mode": "console"},
        "llm": {"provider": "offline"},
        "sources": {"logs": [{"name": "app", "type": "file", "path": str(tmp_path / "*.log")}]},
    }
    (tmp_path / "good.yaml").write_text(json.dumps(good))  # JSON is YAML
    code, out, err = await run_cli("check", "--config", str(tmp_path / "good.yaml"))
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0].split(maxsplit=2) == ["✓", "config", f"{tmp_path / 'good.yaml'}: valid"]
    assert [line.split()[:2] for line in lines] == [
        ["✓", "config"], ["✓", "access"], ["✓", "store"], ["✓", "slack"], ["✓", "llm"],
        ["✓", "logs:app"],
    ]  # fmt: skip
    assert sum("every workspace member may act" in line for line in lines) == 1

    dead = dead_url()
    bad = {
        **good,
        "slack": {"mode": "http", "api_base_url": dead + "/api/"},
        "sources": {
            "logs": [{"name": "loki", "type": "loki", "url": dead.replace("//", "//ops:hunter2@")}],
            "metrics": [{"name": "prom", "type": "prometheus", "url": dead}],
        },
    }
    (tmp_path / "bad.yaml").write_text(json.dumps(bad))
    secret_env = {"SLACK_BOT_TOKEN": "xoxb-very-secret-token", "SLACK_SIGNING_SECRET": "sig-sec"}
    code, out, err = await run_cli("check", "--config", str(tmp_path / "bad.yaml"), env=secret_env)
    assert code == 1, out + err
    assert len(out.splitlines()) == 8  # config, access, store, slack, llm, loki, prom, summary
    assert f"✗ metrics:prom  prometheus at {dead}: cannot connect" in out
    assert f"✗ logs:loki     loki at {dead}: cannot connect" in out
    assert "✗ slack" in out
    assert out.splitlines()[-1] == "3 of 7 checks failed"
    for secret in ("xoxb-very-secret-token", "sig-sec", "hunter2"):
        assert secret not in out + err


async def test_cli_invalid_config_is_one_red_line(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("slack: {mode: carrier-pigeon}\n")
    code, out, _ = await run_cli("check", "--config", str(tmp_path / "broken.yaml"))
    assert code == 1
    assert out.splitlines() == [
        "✗ config  config error: slack.mode: Input should be 'http', 'socket' or 'console' "
        f"(in {tmp_path / 'broken.yaml'})"
    ]


async def test_unreachable_postgresql_is_red_without_its_password() -> None:
    port = dead_url().rsplit(":", 1)[1]
    url = f"postgresql+asyncpg://firebreak:pg-pass-123@127.0.0.1:{port}/firebreak"
    line = by_name(await run_checks(Config(store={"url": url}), Secrets(), "valid"))["store"]
    assert not line.ok
    assert line.detail.startswith("postgresql+asyncpg://firebreak:") and "127.0.0.1" in line.detail
    assert "Connect call failed" in line.detail or "refused" in line.detail.lower()
    assert "pg-pass-123" not in line.detail


async def test_each_cluster_is_reached_and_a_refusing_one_is_red(tmp_path: Path) -> None:
    with FakeKubeApi() as api, FakeKubeApi() as down:
        down.outage = True
        config = Config(
            store={"url": f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"},
            slack={"mode": "console"},
            sources={
                "kubernetes": [
                    {"name": "prod", "kubeconfig": str(api.write_kubeconfig(tmp_path / "a"))},
                    {"name": "dr", "kubeconfig": str(down.write_kubeconfig(tmp_path / "b"))},
                ]
            },
        )
        results = by_name(await run_checks(config, Secrets(), "test config: valid"))
        assert [r.path.rstrip("/") for r in api.requests] == ["/version"]

    assert results["kubernetes:prod"].ok, results["kubernetes:prod"]
    assert "v1.31.4" in results["kubernetes:prod"].detail
    assert "context fake-cluster" in results["kubernetes:prod"].detail
    assert not results["kubernetes:dr"].ok
    assert "503" in results["kubernetes:dr"].detail
    assert api.token not in str(results)


async def test_alertmanager_is_reached_with_its_token(tmp_path: Path) -> None:
    """Green against Debian's Alertmanager; red, naming the token but never showing it, behind
    a proxy that refuses the token; red with the reason on a dead port."""

    def refusing_proxy(request: Seen) -> Answer:
        return 401, "application/json", json.dumps("bad credentials").encode()

    def config_for(url: str) -> Config:
        return Config(
            store={"url": f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"},
            slack={"mode": "console"},
            alertmanager={"url": url},
        )

    token = Secrets(alertmanager_token="am-secret-42")
    with run_alertmanager(tmp_path, webhook_url="http://127.0.0.1:9/unused") as alertmanager:
        green = by_name(await run_checks(config_for(alertmanager), token, "valid"))
    with serving(refusing_proxy) as proxy:
        refused = by_name(await run_checks(config_for(proxy), token, "valid"))
    dead = dead_url()
    down = by_name(await run_checks(config_for(dead), token, "valid"))

    assert green["alertmanager"].ok, green["alertmanager"]
    assert green["alertmanager"].detail.startswith("alertmanager 0.")
    assert green["alertmanager"].detail.endswith(f"at {alertmanager}, cluster disabled")
    assert not refused["alertmanager"].ok
    assert "HTTP 401" in refused["alertmanager"].detail
    assert "FIREBREAK_ALERTMANAGER_TOKEN" in refused["alertmanager"].detail
    assert not down["alertmanager"].ok
    assert (
        down["alertmanager"].detail
        == f"Alertmanager at {dead} is down or unreachable (ConnectError)"
    )
    assert "am-secret-42" not in str([green, refused, down])


async def test_no_alertmanager_configured_no_line(tmp_path: Path) -> None:
    config = Config(
        store={"url": f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"}, slack={"mode": "console"}
    )
    assert "alertmanager" not in by_name(await run_checks(config, Secrets(), "valid"))


async def test_who_may_act_is_said_once(tmp_path: Path) -> None:
    store = {"url": f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"}
    open_config = Config(store=store, slack={"mode": "console"})
    limited = Config(
        store=store, slack={"mode": "console"}, access={"responders": ["U0ALICE", "oncall"]}
    )
    open_lines = [
        r for r in await run_checks(open_config, Secrets(), "valid") if r.name == "access"
    ]
    limited_lines = [r for r in await run_checks(limited, Secrets(), "valid") if r.name == "access"]

    assert len(open_lines) == 1 and open_lines[0].ok
    assert "every workspace member may act on every incident" in open_lines[0].detail
    assert [(r.ok, r.detail) for r in limited_lines] == [(True, "responders: U0ALICE, oncall")]


async def test_an_unreachable_openai_server_gets_the_usual_hints(tmp_path: Path) -> None:
    dead = dead_url()

    async def llm_line(base_url: str, secrets: Secrets) -> CheckResult:
        config = Config(
            store={"url": f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"},
            slack={"mode": "console"},
            llm={"provider": "openai", "model": "m", "base_url": base_url},
        )
        return by_name(await run_checks(config, secrets, "valid"))["llm"]

    bare = await llm_line(dead, Secrets())
    assert not bare.ok
    assert "OpenAI-compatible base URLs usually end in /v1" in bare.detail
    assert "OPENAI_API_KEY is not set" in bare.detail
    keyed = await llm_line(dead + "/v1", Secrets(openai_api_key="sk-test-secret"))
    assert not keyed.ok and keyed.detail == f"openai m at {dead}/v1: Connection error."


async def test_an_alert_that_would_page_nobody_is_a_warning(tmp_path: Path) -> None:
    store = {"url": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"}
    level = {"notify": ["U0ALICE"]}
    for escalation, warning in (
        ({}, "warning: escalation.policies is empty: no alert pages anyone"),
        (
            {"policies": [{"name": "payments", "match": {"team": "payments"}, "levels": [level]}]},
            "warning: no escalation policy matches every alert (none has `match: {}`): an alert "
            "that matches none of payments pages nobody",
        ),
        ({"policies": [{"name": "default", "levels": [level]}]}, None),
    ):
        config = {"store": store, "slack": {"mode": "console"}, "escalation": escalation}
        (tmp_path / "c.yaml").write_text(json.dumps(config))
        code, out, err = await run_cli("check", "--config", str(tmp_path / "c.yaml"))
        assert code == 0, out + err  # a warning, not a failure
        assert (warning in err) if warning else ("warning" not in err), err


async def test_a_host_that_does_not_resolve_is_named(tmp_path: Path) -> None:
    config = Config(
        store={"url": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"},
        slack={"mode": "console"},
        llm={"provider": "offline"},
        sources={"metrics": [{"name": "prom", "type": "prometheus", "url": "http://prom.invalid"}]},
    )
    results = by_name(await run_checks(config, Secrets(), "valid"))
    line = results["metrics:prom"]
    assert not line.ok
    assert "cannot resolve host 'prom.invalid' (DNS)" in line.detail, line.detail


async def test_no_source_says_the_rca_has_no_evidence(tmp_path: Path) -> None:
    bare = {
        "store": {"url": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"},
        "slack": {"mode": "console"},
    }
    (tmp_path / "c.yaml").write_text(json.dumps(bare))
    code, out, _ = await run_cli("check", "--config", str(tmp_path / "c.yaml"))
    assert code == 0, out
    assert "the RCA has no evidence to rest on; add one under sources.logs" in out
    (tmp_path / "app.log").write_text("2026-11-22T10:00:00Z INFO hello\n")
    logs = {"logs": [{"name": "app", "type": "file", "path": str(tmp_path / "*.log")}]}
    (tmp_path / "c.yaml").write_text(json.dumps(bare | {"sources": logs}))
    code, out, _ = await run_cli("check", "--config", str(tmp_path / "c.yaml"))
    assert code == 0 and "no evidence" not in out, out
