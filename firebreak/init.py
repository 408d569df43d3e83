"""`firebreak init`: write a commented `config.yaml` for what runs on this machine.

It probes the usual local endpoints (Loki `:3100/ready`, Prometheus and Alertmanager
`/-/ready` on `:9090` and `:9093`, Ollama `:11434/api/tags`, Elasticsearch `:9200`), all at
once with a short timeout, then the README's local stack (`:19090`, `:19093`) for what did not
answer, and writes a configuration that uses what answered and shows the
rest as commented examples. What a probe cannot find out (the Slack mode and channel, the
store, the public URL, endpoints elsewhere) comes from flags; a URL given by flag is written
even when it does not answer from here (it may only be reachable from where Firebreak runs),
with a comment saying so.

Why a template and not `yaml.dump`: the point of the file is its comments. Every value is
written as a YAML scalar that cannot change meaning (quoted strings), and the text is
validated against the config models before anything is written, so the file always loads.
An existing file is never overwritten without `--force`; the write is atomic.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn
from rich.text import Text

from firebreak.config import Config
from firebreak.tools.config import LLMConfig
from firebreak.tools.loki import LokiSource

__all__ = [
    "DEFAULT_URLS",
    "LOCAL_STACK_URLS",
    "Found",
    "InitOptions",
    "init_main",
    "probe_all",
    "render_config",
]

PROBE_TIMEOUT_S = 2.0
DEFAULT_URLS: dict[str, str] = {
    "loki": "http://localhost:3100",
    "prometheus": "http://localhost:9090",
    "alertmanager": "http://localhost:9093",
    "ollama": "http://localhost:11434",
    "elasticsearch": "http://localhost:9200",
}
# The README's local stack (examples/local-stack) listens beside the usual ports, so a laptop
# running it is found too; tried only where the usual port did not answer.
LOCAL_STACK_URLS: dict[str, str] = {
    "prometheus": "http://localhost:19090",
    "alertmanager": "http://localhost:19093",
}
DEFAULT_MODEL = LLMConfig.model_fields["model"].default
DEFAULT_LOKI_QUERY = LokiSource.model_fields["query"].default


@dataclass(frozen=True)
class Found:
    """What one probe learnt. `ok`: the service answered like itself."""

    name: str
    url: str
    ok: bool
    detail: str
    explicit: bool = False  # the URL came from a flag
    models: tuple[str, ...] = ()  # Ollama's pulled models


@dataclass
class InitOptions:
    path: Path = Path("config.yaml")
    force: bool = False
    slack_mode: str = "console"
    slack_channel: str = "C0INCIDENTS"
    public_url: str = "http://localhost:8080"
    store_url: str = "sqlite+aiosqlite:///./firebreak.db"
    urls: dict[str, str] = field(default_factory=dict)  # explicit endpoints, by probe name
    probe: bool = True  # False: probe nothing, write only the explicit URLs
    page: str | None = None  # who the default policy pages (U…, S…); None: the channel

    @property
    def paged(self) -> str | None:
        """The default policy's target: `--page`, else the incidents channel (`@here`); None
        when the channel is a name, not an id (an escalation level needs the id)."""
        if self.page is not None:
            return self.page
        return self.slack_channel if re.fullmatch(r"[CG][A-Z0-9]+", self.slack_channel) else None


# --------------------------------------------------------------------------------------------
# Probing


class _NotIt(Exception):
    """Something answered, but not the service we look for; the message says what."""


async def _get(client: httpx.AsyncClient, url: str) -> httpx.Response:
    return await client.get(url, headers={"Accept": "application/json, text/plain"})


async def _probe_loki(client: httpx.AsyncClient, base: str) -> tuple[str, tuple[str, ...]]:
    response = await _get(client, base + "/ready")
    if response.status_code == 200:
        return "ready", ()
    if response.status_code == 503:  # Loki answers 503 for a while after it starts
        return "answering, not ready yet", ()
    raise _NotIt(f"/ready answered HTTP {response.status_code}")


async def _probe_prometheus(client: httpx.AsyncClient, base: str) -> tuple[str, tuple[str, ...]]:
    await _ready(client, base)
    info = await _get(client, base + "/api/v1/status/buildinfo")
    version = _dig(info, "data", "version")
    return (f"prometheus {version}, ready" if version else "ready"), ()


async def _probe_alertmanager(client: httpx.AsyncClient, base: str) -> tuple[str, tuple[str, ...]]:
    await _ready(client, base)
    status = await _get(client, base + "/api/v2/status")
    version = _dig(status, "versionInfo", "version")
    return (f"alertmanager {version}, ready" if version else "ready"), ()


async def _ready(client: httpx.AsyncClient, base: str) -> None:
    response = await _get(client, base + "/-/ready")
    if response.status_code != 200:
        raise _NotIt(f"/-/ready answered HTTP {response.status_code}")


async def _probe_ollama(client: httpx.AsyncClient, base: str) -> tuple[str, tuple[str, ...]]:
    response = await _get(client, base + "/api/tags")
    models = _dig(response, "models")
    if response.status_code != 200 or not isinstance(models, list):
        raise _NotIt(f"/api/tags answered HTTP {response.status_code} without a model list")
    names = tuple(str(m["name"]) for m in models if isinstance(m, dict) and m.get("name"))
    if not names:
        return "answering, but no model pulled (`ollama pull llama3.1:8b`)", ()
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"{len(names)} model(s): {shown}", names


async def _probe_elasticsearch(client: httpx.AsyncClient, base: str) -> tuple[str, tuple[str, ...]]:
    response = await _get(client, base + "/")
    if response.status_code == 401:
        raise _NotIt("answers, but asks for credentials (not supported by the source yet)")
    number = _dig(response, "version", "number")
    if response.status_code != 200 or not number:
        raise _NotIt(f"GET / answered HTTP {response.status_code}, not an Elasticsearch banner")
    flavour = _dig(response, "version", "distribution") or "elasticsearch"
    return f"{flavour} {number}", ()


def _dig(response: httpx.Response, *keys: str) -> Any:
    try:
        value: Any = response.json()
    except ValueError:
        return None
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


Prober = Callable[[httpx.AsyncClient, str], Awaitable[tuple[str, tuple[str, ...]]]]
PROBES: dict[str, Prober] = {
    "loki": _probe_loki,
    "prometheus": _probe_prometheus,
    "alertmanager": _probe_alertmanager,
    "ollama": _probe_ollama,
    "elasticsearch": _probe_elasticsearch,
}


async def _probe(client: httpx.AsyncClient, name: str, url: str, explicit: bool) -> Found:
    base = url.rstrip("/")
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S + 0.5):
            detail, models = await PROBES[name](client, base)
        return Found(name, base, True, detail, explicit, models)
    except _NotIt as exc:
        return Found(name, base, False, str(exc), explicit)
    except (TimeoutError, httpx.TimeoutException):
        return Found(name, base, False, f"no answer within {PROBE_TIMEOUT_S:g}s", explicit)
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        return Found(name, base, False, f"cannot connect ({reason})", explicit)


async def probe_all(targets: Mapping[str, tuple[str, bool]], console: Console) -> dict[str, Found]:
    """Probe every `name -> (url, explicit)` concurrently, showing progress on `console`."""
    results: dict[str, Found] = {}
    progress = Progress(
        SpinnerColumn(),
        TextColumn("probing local endpoints"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # a pipe or a file gets the result lines only
    )
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S, follow_redirects=True) as client:
        with progress:
            task = progress.add_task("probe", total=len(targets))

            async def one(name: str, url: str, explicit: bool) -> None:
                results[name] = await _probe(client, name, url, explicit)
                progress.advance(task)

            await asyncio.gather(*(one(n, u, e) for n, (u, e) in targets.items()))
    return {name: results[name] for name in targets}


# --------------------------------------------------------------------------------------------
# Rendering


def _q(value: str) -> str:
    """A YAML scalar that stays a string whatever it holds."""
    if "'" in value or "\n" in value:
        return json.dumps(value)
    return f"'{value}'"


def _use(found: dict[str, Found], name: str) -> Found | None:
    """The endpoint to write: one that answered, or one given by flag."""
    entry = found.get(name)
    if entry is None or not (entry.ok or entry.explicit):
        return None
    return entry


def _note(entry: Found) -> str:
    return f"found by init: {entry.detail}" if entry.ok else f"did not answer init: {entry.detail}"


def render_config(options: InitOptions, found: dict[str, Found], now: datetime) -> str:
    lines = _header(options, now)
    lines += _server_store_slack(options, found)
    lines += _llm(found)
    lines += _sources(found)
    lines += _escalation(options)
    return "\n".join(lines) + "\n"


def _header(options: InitOptions, now: datetime) -> list[str]:
    return [
        f"# Firebreak configuration, written by `firebreak init` on {now:%Y-%m-%d %H:%M} UTC.",
        f"# Check it: firebreak check --config {options.path}    Run it: firebreak serve",
        "# Any key can be overridden from the environment: FIREBREAK__SECTION__KEY",
        "# (e.g. FIREBREAK__SLACK__MODE=http). Secrets never go in this file; set them in the",
        "# environment: SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (slack.mode: http), or",
        "# SLACK_BOT_TOKEN and SLACK_APP_TOKEN (socket); OPENAI_API_KEY (llm.provider: openai);",
        "# FIREBREAK_WEBHOOK_TOKEN (Alertmanager's bearer token); FIREBREAK_API_TOKEN (the API).",
        "",
    ]


def _server_store_slack(options: InitOptions, found: dict[str, Found]) -> list[str]:
    lines = [
        "server:",
        "  host: '127.0.0.1'  # this machine only; '0.0.0.0' for every interface, once",
        "  # FIREBREAK_WEBHOOK_TOKEN and FIREBREAK_API_TOKEN are set",
        "  port: 8080",
        f"  public_url: {_q(options.public_url)}  # where Slack reaches Firebreak (mode: http)",
        "",
        "store:",
        f"  url: {_q(options.store_url)}  # or 'postgresql+asyncpg://user@host/db'",
        "  # retention_days: 90  # delete resolved incidents older than this (default: keep)",
        "",
        "slack:",
        f"  mode: {_q(options.slack_mode)}  # http | socket | console (prints to the terminal)",
        f"  channel: {_q(options.slack_channel)}  # where new incident cards are posted",
        "  command: /incident",
    ]
    alertmanager = _use(found, "alertmanager")
    if alertmanager is not None:
        lines.append(f"  # Alertmanager: {_note(alertmanager)}; its links go on the cards")
        lines.append(f"  alertmanager_url: {_q(alertmanager.url)}")
    else:
        lines.append("  # alertmanager_url: 'http://alertmanager:9093'  # links on the cards")
    return [*lines, ""]


def _llm(found: dict[str, Found]) -> list[str]:
    ollama = _use(found, "ollama")
    if ollama is not None and (ollama.models or ollama.explicit):
        model = (
            DEFAULT_MODEL
            if DEFAULT_MODEL in ollama.models or not ollama.models
            else (ollama.models[0])
        )
        return [
            "llm:",
            f"  # Ollama: {_note(ollama)}",
            "  provider: ollama  # ollama | openai | offline (no LLM: a deterministic analyzer)",
            f"  model: {_q(model)}",
            f"  base_url: {_q(ollama.url)}",
            "  timeout_s: 60",
            "",
        ]
    reason = f"Ollama at {ollama.url}: {ollama.detail}" if ollama else "no Ollama answered"
    return [
        "llm:",
        f"  # {reason}; the offline analyzer needs nothing.",
        "  provider: offline  # ollama | openai | offline",
        "  # provider: ollama",
        f"  # model: {_q(DEFAULT_MODEL)}",
        "  # base_url: 'http://localhost:11434'",
        "  # OpenAI or any OpenAI-compatible server (OPENAI_API_KEY in the environment):",
        "  # provider: openai",
        "  # model: 'gpt-4o-mini'",
        "  # base_url: 'https://api.openai.com/v1'",
        "",
    ]


def _sources(found: dict[str, Found]) -> list[str]:
    logs: list[str] = []
    loki = _use(found, "loki")
    if loki is not None:
        logs += [
            f"    # Loki: {_note(loki)}",
            "    - name: loki",
            "      type: loki",
            f"      url: {_q(loki.url)}",
            f"      query: {_q(DEFAULT_LOKI_QUERY)}  # LogQL; sees the alert's labels",
        ]
    es = _use(found, "elasticsearch")
    if es is not None:
        logs += [
            f"    # Elasticsearch: {_note(es)}",
            "    - name: elasticsearch",
            "      type: elasticsearch",
            f"      url: {_q(es.url)}",
            "      index: '*'",
        ]
    examples = ["    # - {name: app, type: file, path: /var/log/app/*.log}"]
    if loki is None:
        examples.append("    # - {name: loki, type: loki, url: 'http://loki:3100'}")
    if es is None:
        examples.append("    # - {name: es, type: elasticsearch, url: 'http://elasticsearch:9200'}")
    lines = ["sources:", "  logs:" if logs else "  logs: []", *logs, *examples]

    prometheus = _use(found, "prometheus")
    if prometheus is not None:
        lines += [
            "  metrics:",
            f"    # Prometheus: {_note(prometheus)}",
            "    - name: prometheus",
            "      type: prometheus",
            f"      url: {_q(prometheus.url)}",
            "      queries: []  # PromQL templates read besides the alert's own expression",
        ]
    else:
        lines += [
            "  metrics: []",
            "    # - {name: prometheus, type: prometheus, url: 'http://prometheus:9090'}",
        ]
    return [*lines, ""]


def _escalation(options: InitOptions) -> list[str]:
    lines = ["escalation:", f"  # {paging_text(options)[:1].upper()}{paging_text(options)[1:]}."]
    lines += [
        "  # A level notifies Slack users (U…), user groups (S…), channels (C…: a post there",
        "  # with @here) or schedule:NAME (see schedules); add levels for who is paged next",
        "  # when nobody acknowledges in time.",
    ]
    policy = [
        "    - name: default",
        "      match: {}  # label: value; the first matching policy wins",
        "      levels:",
        f"        - {{notify: [{_q(options.paged or 'U0ONCALL1')}], timeout_s: 300}}",
        "        # - {notify: ['S0SRELEADS'], timeout_s: 600}",
    ]
    if options.paged is None:
        return [*lines, "  policies: []", *("  # " + line[2:] for line in policy)]
    return [*lines, "  policies:", *policy]


def paging_text(options: InitOptions) -> str:
    """Who the default policy pages, in words."""
    if options.page is not None:
        kind = "user group" if options.page.startswith("S") else "user"
        return f"alerts page the Slack {kind} {options.page}"
    if options.paged is None:
        return (
            f"alerts page nobody: slack.channel {options.slack_channel} is not a channel id "
            "(C…); give one, or --page U…/S…"
        )
    return f"alerts page the incidents channel {options.slack_channel} (a post with @here)"


# --------------------------------------------------------------------------------------------
# The command


def init_main(
    options: InitOptions,
    console: Console,
    *,
    defaults: Mapping[str, str] = DEFAULT_URLS,
    alternates: Mapping[str, str] = LOCAL_STACK_URLS,
    now: datetime | None = None,
) -> int:
    """`firebreak init`: 0 when the file was written, 1 when it exists, 2 for a bad flag."""
    if options.path.exists() and not options.force:
        console.print(
            Text(
                f"{options.path} exists; nothing written (--force replaces it, "
                "--path my-config.yaml writes another)",
                style="red",
            ),
            soft_wrap=True,
        )
        return 1
    targets = {
        name: (options.urls[name], True) if name in options.urls else (url, False)
        for name, url in defaults.items()
        if options.probe or name in options.urls
    }
    if options.probe:
        found = asyncio.run(_probe_with_alternates(targets, alternates, console))
    else:
        found = {
            n: Found(n, u.rstrip("/"), False, "not probed", e) for n, (u, e) in targets.items()
        }
    for entry in found.values():
        _print_probe(console, entry)
    text = render_config(options, found, now or datetime.now(UTC))
    problem = _invalid(text)
    if problem:
        console.print(Text(f"firebreak init: {problem}; nothing written", style="red"))
        return 2
    _write(options.path, text, options.force)
    console.print(
        Text(f"wrote {options.path}; next: firebreak check --config {options.path}"),
        soft_wrap=True,
    )
    paging = Text(paging_text(options), style="yellow" if options.paged is None else "")
    if options.page is None and options.paged is not None:
        paging.append("; --page U…/S… pages a person or a user group instead")
    console.print(paging, soft_wrap=True)
    if not any(_use(found, name) for name in ("loki", "elasticsearch", "prometheus")):
        console.print(Text(NO_EVIDENCE_HINT, style="yellow"), soft_wrap=True)
    return 0


NO_EVIDENCE_HINT = (
    "no log or metric source: the RCA will have no evidence; add one under sources.logs / "
    "sources.metrics (README: Log and metric sources)"
)


async def _probe_with_alternates(
    targets: Mapping[str, tuple[str, bool]], alternates: Mapping[str, str], console: Console
) -> dict[str, Found]:
    """Every target, then the alternate URL of each default one that did not answer; an
    alternate that answers takes its place, one that does not leaves the first answer."""
    found = await probe_all(targets, console)
    second = {
        name: (alternates[name], False)
        for name, entry in found.items()
        if name in alternates and not entry.ok and not entry.explicit
    }
    if second:
        retried = await probe_all(second, console)
        found |= {name: entry for name, entry in retried.items() if entry.ok}
    return found


def _print_probe(console: Console, entry: Found) -> None:
    line = Text()
    line.append("✓ " if entry.ok else "· ", style="bold green" if entry.ok else "dim")
    line.append(f"{entry.name:<13}", style="bold")
    line.append(f" {entry.url}: {entry.detail}")
    if entry.explicit and not entry.ok:
        line.append("  (written anyway: given by flag)", style="yellow")
    console.print(line, soft_wrap=True, highlight=False)


def _invalid(text: str) -> str | None:
    """Why the rendered text would not load (the flags' values), or None."""
    try:
        Config.model_validate(yaml.safe_load(text))  # the file alone, no environment
    except ValidationError as exc:
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return None


def _write(path: Path, text: str, force: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not force:
        with path.open("x", encoding="utf-8") as out:  # refuses a file created meanwhile
            out.write(text)
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a file that holds no secret
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
