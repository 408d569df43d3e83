"""`firebreak check`: validate the configuration and reach every configured dependency.

One line per dependency, green ✓ or red ✗ with the reason, in a fixed order: config, store,
Slack, LLM, each log source, each metrics source, each Kubernetes cluster (`/version`, with
the kubeconfig and context it is configured with), Alertmanager (`/api/v2/status` with
`$FIREBREAK_ALERTMANAGER_TOKEN`, as the silence buttons will call it). Exit status 1 when any
line is red. An alert that would page nobody (no escalation policy, or none matching every
alert) is a warning on stderr, not a failure.

Why it is built this way:
- The checks run concurrently, each bounded by `TIMEOUT_S`, so a black-holed host costs five
  seconds, not five seconds per dependency. The output order is fixed all the same.
- A check never changes anything: the store is pinged and its Alembic revision compared with
  the code's head, never migrated; a SQLite file that does not exist yet is not created. A
  store that exists but was never migrated (a new PostgreSQL database) is green, like a SQLite
  file not created yet: `serve` migrates it at start.
- Slack is `auth.test` with the configured `slack.api_base_url`; in console mode no Slack is
  needed. The LLM is `LLMGateway.check()` (a model listing, outside the circuit breaker);
  `offline` needs nothing.
- Secrets never reach the output: URLs lose their user info, and every message passes through
  the same `Redactor` the logs use, primed with the secret values from the environment.
- Lines are printed with soft wrapping, so each result stays on one line whatever the width of
  the terminal (or of the pipe a script reads).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import SecretStr
from rich.console import Console
from rich.text import Text

from firebreak.access.config import OPEN as ACCESS_OPEN
from firebreak.config import Config, ConfigError, Secrets, load_config, resolve_config_path
from firebreak.tools.alertmanager import AlertmanagerClient, AlertmanagerConfig, AlertmanagerError
from firebreak.tools.errors import SourceError
from firebreak.tools.fetching import safe_url
from firebreak.tools.kube_config import KubernetesError
from firebreak.tools.redact import Redactor
from firebreak.tools.sources import (
    ClusterSource,
    LogSource,
    MetricSource,
    open_cluster,
    open_log_source,
    open_metric_source,
)

__all__ = ["TIMEOUT_S", "CheckResult", "check_main", "print_results", "run_checks"]

TIMEOUT_S = 5.0
_MAX_DETAIL = 300
NO_EVIDENCE_HINT = (
    "· no log, metric or cluster source: the RCA has no evidence to rest on; add one under "
    "sources.logs / sources.metrics (README: Log and metric sources)"
)


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


class CheckFailed(Exception):
    """A dependency answered, but not well; the message is the reason."""


def _unresolved_host(exc: BaseException) -> str | None:
    """The host whose name did not resolve, when name resolution is what failed: a typo in a
    URL reads "cannot resolve host …", not a bare errno."""
    if not isinstance(exc, httpx.ConnectError):
        return None
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, socket.gaierror):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return None
    try:
        return exc.request.url.host or None
    except RuntimeError:  # no request attached
        return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, CheckFailed | SourceError | KubernetesError):  # written for people
        return str(exc)
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"no answer within {TIMEOUT_S:g}s"
    if (host := _unresolved_host(exc)) is not None:
        return f"cannot resolve host {host!r} (DNS): check the URL's host name"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {exc}" if str(exc) else "cannot connect (connection refused)"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------------------------
# The checks. Each returns the green detail or raises; `_run` turns exceptions into red lines.


async def check_store(config: Config) -> str:
    from sqlalchemy.engine import make_url

    from firebreak.store.db import create_engine, ping

    url = make_url(config.store.url)
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite":
        missing = await asyncio.to_thread(_sqlite_not_created, url.database or "", shown)
        if missing:
            return missing

    engine = create_engine(config.store.url)
    try:
        await ping(engine)
        async with engine.connect() as conn:
            current = await conn.run_sync(_current_heads)
            tables = await conn.run_sync(_table_names) if not current else []
    except (TimeoutError, asyncio.CancelledError):
        raise
    except Exception as exc:
        inner = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
        raise CheckFailed(f"{shown}: {_describe(inner)}") from None
    finally:
        await engine.dispose()
    heads = await asyncio.to_thread(_code_heads, config.store.url)
    if set(current) == set(heads):
        return f"{shown}: reachable, schema at head {', '.join(sorted(heads))}"
    if not current:  # a new database: the first start migrates it, as on SQLite
        others = ""
        if tables:  # shared with another application? Its tables stay untouched.
            named = ", ".join(sorted(tables)[:3]) + (", …" if len(tables) > 3 else "")
            others = f"; it already holds {len(tables)} other table(s): {named}"
        return (
            f"{shown}: reachable, not migrated yet "
            f"(`firebreak serve` or `firebreak db upgrade` will){others}"
        )
    unknown = set(current) - set(_all_revisions(config.store.url))
    if unknown:
        raise CheckFailed(
            f"{shown}: schema at {', '.join(sorted(current))}, unknown to this version "
            f"(head {', '.join(sorted(heads))}): the database is newer than the code"
        )
    raise CheckFailed(
        f"{shown}: schema at {', '.join(sorted(current))}, head is {', '.join(sorted(heads))}: "
        "run `firebreak db upgrade`"
    )


def _sqlite_not_created(database: str, shown: str) -> str | None:
    """A note when the SQLite file does not exist yet (and could be created), else None."""
    if not database or database == ":memory:" or Path(database).exists():
        return None
    parent = Path(database).resolve().parent
    if not parent.is_dir():
        raise CheckFailed(f"{shown}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise CheckFailed(f"{shown}: directory {parent} is not writable")
    return f"{shown}: not created yet (`firebreak serve` or `firebreak db upgrade` will)"


def _current_heads(connection: object) -> tuple[str, ...]:
    from alembic.runtime.migration import MigrationContext

    return tuple(MigrationContext.configure(connection).get_current_heads())  # type: ignore[arg-type]


def _table_names(connection: object) -> list[str]:
    from sqlalchemy import inspect

    names = inspect(connection).get_table_names()
    return [name for name in names if name != "alembic_version"]


def _script(url: str) -> object:
    from alembic.script import ScriptDirectory

    from firebreak.store.migrate import alembic_config

    return ScriptDirectory.from_config(alembic_config(url))


def _code_heads(url: str) -> tuple[str, ...]:
    return tuple(_script(url).get_heads())  # type: ignore[attr-defined]


def _all_revisions(url: str) -> set[str]:
    return {rev.revision for rev in _script(url).walk_revisions()}  # type: ignore[attr-defined]


async def check_slack(config: Config, secrets: Secrets) -> str:
    mode = config.slack.mode
    if mode == "console":
        return "console mode: no Slack needed"
    missing = secrets.missing_for_slack(mode)
    if missing:
        raise CheckFailed(f"{mode} mode needs {' and '.join(missing)} in the environment")
    if mode == "socket":
        assert secrets.slack_app_token is not None
        if not secrets.slack_app_token.get_secret_value().startswith("xapp-"):
            raise CheckFailed("SLACK_APP_TOKEN is not an app-level token (xapp-…)")

    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    assert secrets.slack_bot_token is not None
    client = AsyncWebClient(
        token=secrets.slack_bot_token.get_secret_value(),
        base_url=config.slack.api_base_url,
        timeout=int(TIMEOUT_S),
    )
    try:
        answer = await client.auth_test()
    except SlackApiError as exc:
        error = exc.response.get("error") if exc.response is not None else None
        raise CheckFailed(
            f"auth.test at {safe_url(config.slack.api_base_url)}: {error or exc}"
        ) from None
    finally:
        session = getattr(client, "session", None)
        if session is not None and not session.closed:
            await session.close()
    team = answer.get("team") or answer.get("team_id") or "?"
    user = answer.get("user") or "?"
    return f"{mode} mode: auth.test ok, team {team}, bot @{user} ({answer.get('user_id', '?')})"


async def check_llm(config: Config, secrets: Secrets) -> str:
    if config.llm.provider == "offline":
        return "offline analyzer (llm.provider: offline): no LLM needed"
    from prometheus_client import CollectorRegistry

    from firebreak.tools.llm import LLMError, LLMGateway

    gateway = LLMGateway.from_config(
        config.llm,
        secrets.openai_api_key,
        registry=CollectorRegistry(),  # a diagnosis: keep the process-wide metrics clean
        timeout_s=min(config.llm.timeout_s, TIMEOUT_S),
        transient_retries=0,
    )
    try:
        return await gateway.check()
    except LLMError as exc:
        raise CheckFailed(str(exc) + _openai_hints(config, secrets)) from None
    finally:
        await gateway.aclose()


def _openai_hints(config: Config, secrets: Secrets) -> str:
    """What usually is wrong when an OpenAI-compatible server does not answer the check."""
    if config.llm.provider != "openai":
        return ""
    hints = []
    if not httpx.URL(config.llm.base_url).path.rstrip("/").endswith("/v1"):
        hints.append("OpenAI-compatible base URLs usually end in /v1")
    if secrets.openai_api_key is None:
        hints.append("OPENAI_API_KEY is not set (servers such as OpenAI and Azure need it)")
    return "".join(f"; {hint}" for hint in hints)


async def check_alertmanager(settings: AlertmanagerConfig, token: SecretStr | None) -> str:
    bounded = settings.model_copy(update={"timeout_s": TIMEOUT_S})
    async with AlertmanagerClient.from_config(bounded, token) as client:
        try:
            return await client.describe()
        except AlertmanagerError as exc:
            raise CheckFailed(str(exc)) from None


# --------------------------------------------------------------------------------------------
# Running and printing


async def _run(
    name: str, make: Callable[[], Awaitable[str]], redactor: Redactor, where: str = ""
) -> CheckResult:
    try:
        async with asyncio.timeout(TIMEOUT_S + 1):  # the clients' own 5 s timeouts go first
            detail = await make()
        ok = True
    except Exception as exc:
        detail, ok = _describe(exc), False
        if where and where not in detail:
            detail = f"{where}: {detail}"
    return CheckResult(name, ok, redactor.redact(detail)[:_MAX_DETAIL])


async def run_checks(config: Config, secrets: Secrets, config_line: str) -> list[CheckResult]:
    """Every check, concurrently; results in the fixed output order."""
    redactor = Redactor(secrets=secrets.values())
    async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
        jobs: list[tuple[str, str, Callable[[], Awaitable[str]]]] = [
            ("store", "", lambda: check_store(config)),
            ("slack", "", lambda: check_slack(config, secrets)),
            ("llm", "", lambda: check_llm(config, secrets)),
        ]
        sources: list[tuple[str, LogSource | MetricSource | ClusterSource]] = [
            *(("logs", open_log_source(s, http=client)) for s in config.sources.logs),
            *(("metrics", open_metric_source(s, http=client)) for s in config.sources.metrics),
            *(("kubernetes", open_cluster(s)) for s in config.sources.kubernetes),
        ]
        for kind, source in sources:
            jobs.append((f"{kind}:{source.name}", source.where, source.check))
        if (alertmanager := config.alertmanager) is not None:
            token = secrets.alertmanager_token
            jobs.append(("alertmanager", "", lambda: check_alertmanager(alertmanager, token)))
        results = await asyncio.gather(
            *(_run(name, make, redactor, where) for name, where, make in jobs)
        )
    return [CheckResult("config", True, config_line), access_result(config), *results]


def access_result(config: Config) -> CheckResult:
    """Who may act, said once: open to everyone without an `access` section (not a failure:
    it is how Firebreak behaved before the section existed)."""
    if config.access is None:
        return CheckResult("access", True, ACCESS_OPEN)
    return CheckResult("access", True, "responders: " + ", ".join(config.access.responders))


def print_results(results: list[CheckResult], console: Console) -> None:
    width = max(len(r.name) for r in results)
    for result in results:
        line = Text()
        line.append("✓ " if result.ok else "✗ ", style="bold green" if result.ok else "bold red")
        line.append(result.name.ljust(width), style="bold")
        line.append("  ")
        line.append(result.detail, style=None if result.ok else "red")
        console.print(line, soft_wrap=True, highlight=False)


def check_main(config_path: str | None, console: Console | None = None) -> int:
    """`firebreak check`: print one line per dependency; 0 if all are green, else 1."""
    console = console or Console(highlight=False)
    try:
        path = resolve_config_path(config_path)
        config = load_config(config_path)
    except ConfigError as exc:
        print_results([CheckResult("config", False, str(exc))], console)
        return 1
    secrets = Secrets.from_env()
    where = str(path) if path is not None else "no config file: defaults and environment"
    results = asyncio.run(run_checks(config, secrets, f"{where}: valid"))
    print_results(results, console)
    if not (config.sources.logs or config.sources.metrics or config.sources.kubernetes):
        console.print(Text(NO_EVIDENCE_HINT, style="yellow"), soft_wrap=True)
    if (gap := config.escalation.paging_gap()) is not None:
        print(f"warning: {gap}", file=sys.stderr)
    failed = sum(not r.ok for r in results)
    if failed:
        console.print(
            Text(f"{failed} of {len(results)} checks failed", style="bold red"), soft_wrap=True
        )
    return 1 if failed else 0
