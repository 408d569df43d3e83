"""Configuration is validated once, at start, with one line naming the key and the problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from firebreak.config import ConfigError, Secrets, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config()
    assert config.llm.provider == "offline"
    assert config.store.url.startswith("sqlite+aiosqlite://")


def test_wrong_value_and_unknown_key_are_named(tmp_path: Path) -> None:
    path = write(tmp_path, "llm: {timeout_s: soon}\nslack: {chanel: C1}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message
    assert "llm.timeout_s: Input should be a valid number" in message
    assert "slack.chanel: unknown key (did you mean slack.channel?)" in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("slack: {chanel: C1}", "slack.chanel: unknown key (did you mean slack.channel?)"),
        ("slak: {mode: http}", "slak: unknown key (did you mean slack?)"),
        ("llm: {Model: x}", "llm.Model: unknown key (did you mean llm.model?)"),
        (  # inside a list of tagged sources: the fields of that kind of source
            "sources: {logs: [{type: loki, name: l, url: u, qurey: x}]}",
            "sources.logs.0.qurey: unknown key (did you mean sources.logs.0.query?)",
        ),
        (
            "escalation: {policies: [{name: p, levels: [{notify: [U1], timout_s: 5}]}]}",
            "escalation.policies.0.levels.0.timout_s: unknown key "
            "(did you mean escalation.policies.0.levels.0.timeout_s?)",
        ),
        ("server: {flux_capacitor: 1}", "server.flux_capacitor: unknown key ("),
        ("llm: {max_tokenz: 100}", "llm.max_tokenz: unknown key (did you mean llm.max_tokens?)"),
    ],
)
def test_unknown_keys_suggest_the_closest(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text + "\n"))
    assert f"{problem}" in str(caught.value)
    if problem.endswith("unknown key ("):  # nothing close: no suggestion
        assert "did you mean" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "variable"),
    [
        ("slack: {bot_token: xoxb-123456789-abcdef}", "SLACK_BOT_TOKEN"),
        ("slack: {token: abc}", "SLACK_BOT_TOKEN"),
        ("slack: {signing_secret: 8f14e45fceea167a}", "SLACK_SIGNING_SECRET"),
        ("slack: {app_token: xapp-1-A1-2-abc}", "SLACK_APP_TOKEN"),
        ("llm: {api_key: sk-proj-abcdefghijklmnop}", "OPENAI_API_KEY"),
        ("llm: {openai_api_key: whatever}", "OPENAI_API_KEY"),
        ("server: {webhook_token: hunter2hunter2}", "FIREBREAK_WEBHOOK_TOKEN"),
        ("server: {api_token: hunter2hunter2}", "FIREBREAK_API_TOKEN"),
        ("slack: {channel_key: xoxb-123456789-abcdef}", "SLACK_BOT_TOKEN"),  # by its shape
    ],
)
def test_secrets_in_the_file_name_their_variable(tmp_path: Path, text: str, variable: str) -> None:
    path = write(tmp_path, text + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert f": secrets come from the environment: {variable}, not from the config" in message
    pasted = text.split(": ", 2)[-1].rstrip("}")
    assert pasted not in message  # the secret is never repeated back


def test_a_secret_named_by_nobody_lists_every_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "sources: {logs: [{type: file, name: f, path: x, password: pw}]}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "sources.logs.0.password: secrets come from the environment: SLACK_BOT_TOKEN or" in (
        message
    )
    assert "FIREBREAK_API_TOKEN" in message and ": pw" not in message


def test_unknown_section_in_the_environment_suggests_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIREBREAK__SLAK__MODE", "http")
    with pytest.raises(ConfigError, match=r"no config section 'slak' \(did you mean slack\? "):
        load_config(write(tmp_path, "{}\n"))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("store: {url: 'mysql://x'}", "store.url: Value error, must start with"),
        (
            "escalation: {policies: [{name: p, levels: [{notify: [X1]}]}]}",
            "escalation.policies.0.levels.0.notify",
        ),
        ("sources: {logs: [{type: loki, name: l}]}", "sources.logs.0.url: Field required"),
        ("server: {port: 70000}", "server.port: Input should be less than or equal to 65535"),
    ],
)
def test_each_problem_names_its_key(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert fragment in str(caught.value)


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "llm: {provider: ollama, timeout_s: 9}\n")
    monkeypatch.setenv("FIREBREAK__LLM__TIMEOUT_S", "3")
    monkeypatch.setenv(
        "FIREBREAK__SOURCES__METRICS",
        '[{"type": "prometheus", "name": "p", "url": "http://127.0.0.1:9090"}]',
    )
    config = load_config(path)
    assert (config.llm.provider, config.llm.timeout_s) == ("ollama", 3)
    assert config.sources.metrics[0].url == "http://127.0.0.1:9090"


def test_file_from_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREBREAK_CONFIG", str(write(tmp_path, "slack: {channel: C0OPS}\n")))
    assert load_config().slack.channel == "C0OPS"
    monkeypatch.setenv("FIREBREAK_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config()


def test_secrets_only_from_environment() -> None:
    secrets = Secrets.from_env({"SLACK_BOT_TOKEN": "xoxb-1", "FIREBREAK_API_TOKEN": "api"})
    assert secrets.slack_bot_token is not None
    assert sorted(secrets.values()) == ["api", "xoxb-1"]
    assert "xoxb-1" not in repr(secrets)


def test_bad_config_stops_the_cli_with_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {port: nope}\n")
    result = subprocess.run(
        [sys.executable, "-m", "firebreak.cli", "db", "upgrade", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "server.port" in result.stderr


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "firebreak.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_malformed_yaml_is_one_line(tmp_path: Path) -> None:
    result = cli("db", "upgrade", "--config", str(write(tmp_path, "server: {port: 8080\nslack:\n")))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "line 1, column 9" in result.stderr


@pytest.mark.parametrize(("text", "kind"), [("- server\n- slack\n", "list"), ("8080\n", "int")])
def test_a_top_level_that_is_not_a_mapping_is_named(tmp_path: Path, text: str, kind: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"config file {path}: the top level must be a mapping of sections "
        f"(server:, slack:, llm:, …), not a {kind}"
    )


def test_an_empty_file_is_the_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "# nothing set yet\n")).server.port == 8080


def test_environment_errors_name_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "llm: {timeout_s: 60}\n")
    bad = cli("db", "upgrade", "--config", str(path), env={"FIREBREAK__LLM__TIMEOUT_S": "abc"})
    assert "(from $FIREBREAK__LLM__TIMEOUT_S)" in bad.stderr and str(path) not in bad.stderr
    typo = cli("db", "upgrade", "--config", str(path), env={"FIREBREAK__SLAK__MODE": "http"})
    assert typo.returncode == 2
    assert typo.stderr.startswith("$FIREBREAK__SLAK__MODE: no config section 'slak'")


def test_serve_refuses_missing_slack_tokens_before_starting(tmp_path: Path) -> None:
    store = tmp_path / "fb.db"
    path = write(
        tmp_path, f"slack: {{mode: http}}\nstore: {{url: 'sqlite+aiosqlite:///{store}'}}\n"
    )
    result = cli("serve", "--config", str(path), env={"SLACK_BOT_TOKEN": ""})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "slack.mode is http: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET in the environment "
        "(or use slack.mode: console)"
    ]
    assert not store.exists(), "nothing was created before refusing"


def test_unusable_store_is_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "store: {url: 'sqlite+aiosqlite:////nonexistent/dir/fb.db'}\n")
    result = cli("db", "upgrade", "--config", str(path))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "store at sqlite+aiosqlite:////nonexistent/dir/fb.db cannot be used: "
        "unable to open database file"
    ]
