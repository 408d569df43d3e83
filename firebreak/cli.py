"""The `firebreak` command line."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

MAX_ACTOR = 64  # the store's actor columns
STATUSES = ("triggered", "acknowledged", "resolved")  # IncidentStatus's values (tested)

if TYPE_CHECKING:
    from firebreak.config import Config, Secrets
    from firebreak.store.migrate import Upgrade


def main(argv: Sequence[str] | None = None) -> int:
    """Each command imports what it needs when it runs: `--help` and the read commands start
    without the Slack, LLM, scheduler and cluster libraries (tests/firebreak/test_cli_speed.py)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    from firebreak.config import ConfigError

    try:
        return int(args.run(args) or 0)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="firebreak", description=__doc__)
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    commands = parser.add_subparsers(title="commands")

    serve = commands.add_parser("serve", help="HTTP server, Slack, scheduler")
    _config_option(serve)
    serve.set_defaults(run=_serve)

    init = commands.add_parser(
        "init", help="write a commented config.yaml for what runs on this machine"
    )
    init.add_argument("--path", default="config.yaml", help="where to write it (config.yaml)")
    init.add_argument("--force", action="store_true", help="replace an existing file")
    init.add_argument(
        "--slack-mode", choices=["http", "socket", "console"], default="console", help="(console)"
    )
    init.add_argument("--slack-channel", default="C0INCIDENTS", help="channel id for the cards")
    init.add_argument("--public-url", default="http://localhost:8080", help="server.public_url")
    init.add_argument("--store-url", default="sqlite+aiosqlite:///./firebreak.db", help="store.url")
    for name in ("loki", "prometheus", "alertmanager", "ollama", "elasticsearch"):
        init.add_argument(f"--{name}-url", help=f"{name} elsewhere than on this machine")
    init.add_argument(
        "--no-probe", action="store_true", help="probe nothing; write only the URLs given"
    )
    init.add_argument(
        "--page",
        type=_page_target,
        metavar="U…|S…",
        help="who alerts page: a Slack user or user group id (default: @here in the channel)",
    )
    init.set_defaults(run=_init)

    demo = commands.add_parser(
        "demo", help="play a whole incident on this machine: no network, no tokens"
    )
    demo.add_argument("--json", action="store_true", help="print the resulting incident as JSON")
    demo.set_defaults(run=_demo)

    investigate = commands.add_parser(
        "investigate", help="investigate one Alertmanager payload, print the analysis as JSON"
    )
    what = investigate.add_mutually_exclusive_group(required=True)
    what.add_argument("--alert", help="Alertmanager webhook payload (JSON)")
    what.add_argument(
        "--sample",
        action="store_true",
        help="the shipped sample incident, over its own sample logs and metrics",
    )
    _config_option(investigate)
    investigate.set_defaults(run=_investigate)

    evaluate = commands.add_parser(
        "eval", help="replay incidents with a known cause through the configured model; score"
    )
    evaluate.add_argument("--cases", help="a folder of cases (default: the shipped ones)")
    evaluate.add_argument(
        "--from-store",
        action="store_true",
        help="replay the store's resolved incidents that people gave feedback on",
    )
    evaluate.add_argument("--limit", type=_positive_int, default=50, help="stored cases (50)")
    evaluate.add_argument("--json", help="also write the report as JSON to this file")
    _config_option(evaluate)
    evaluate.set_defaults(run=_eval)

    check = commands.add_parser(
        "check", help="validate the config and reach every configured dependency"
    )
    _config_option(check)
    check.set_defaults(run=_check)

    manifest = commands.add_parser(
        "slack-manifest", help="print the Slack app manifest (YAML) for this configuration"
    )
    _config_option(manifest)
    manifest.set_defaults(run=_slack_manifest)

    listing = commands.add_parser("incidents", help="list incidents from the configured store")
    listing.add_argument("--status", choices=STATUSES, help="only incidents in this state")
    _config_option(listing)
    listing.set_defaults(run=_incidents)

    one = commands.add_parser("incident", help="one incident: its facts, RCA and timeline")
    one.add_argument("id", type=_incident_id, help="incident id (#12 or 12)")
    _config_option(one)
    one.set_defaults(run=_incident)

    link = _incident_command(
        commands,
        "open",
        "whom the link is for: the page's forms act as them (default: the OS user, $USER)",
        help="print a signed link to an incident's page (server.public_url)",
    )
    link.set_defaults(run=_open)

    for name, purpose in (
        ("ack", "acknowledge an incident (stops its escalation)"),
        ("resolve", "resolve an incident"),
        ("escalate", "page an incident's next escalation level now"),
        ("note", "add a note to an incident's timeline"),
    ):
        action = _incident_command(
            commands,
            name,
            "who acts, recorded on the timeline (default: the OS user, $USER)",
            help=purpose,
            description=f"{purpose[:1].upper()}{purpose[1:]}"
            ", as Slack's buttons and the write API do; Slack is told through the outbox a "
            "running `firebreak serve` delivers.",
        )
        if name == "note":
            action.add_argument("text", type=_note_text, help="the note (quote it)")
        action.set_defaults(run=_act, action=name)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(title="db commands", required=True)
    db_upgrade = db_commands.add_parser("upgrade", help="apply schema migrations")
    _config_option(db_upgrade)
    db_upgrade.set_defaults(run=_db_upgrade)
    db_purge = db_commands.add_parser(
        "purge", help="delete resolved incidents older than store.retention_days"
    )
    db_purge.add_argument(
        "--older-than-days",
        type=_positive_int,
        help="instead of store.retention_days: resolved more than this many days ago",
    )
    db_purge.add_argument(
        "--batch", type=_positive_int, default=200, help="incidents per transaction (200)"
    )
    _config_option(db_purge)
    db_purge.set_defaults(run=_db_purge)
    return parser


class _Version(argparse.Action):
    """`--version`, reading the installed version only when asked."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from importlib.metadata import version

        parser.exit(message=f"firebreak {version('firebreak')}\n")


def _incident_id(raw: str) -> int:
    digits = raw.strip().removeprefix("#")
    if not digits.isdigit() or len(digits) > 18:
        raise argparse.ArgumentTypeError(f"{raw!r} is not an incident id (like 12 or #12)")
    return int(digits)


def _page_target(raw: str) -> str:
    target = raw.strip()
    if not re.fullmatch(r"[UWS][A-Z0-9]{2,}", target):
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not a Slack user id (U…) or user group id (S…)"
        )
    return target


def _actor(raw: str) -> str:
    actor = raw.strip()
    if not 1 <= len(actor) <= MAX_ACTOR or not actor.isprintable():
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not a name or Slack user id (1 to {MAX_ACTOR} printable characters)"
        )
    return actor


def _note_text(raw: str) -> str:
    text = raw.strip()
    if not text or "\x00" in text:
        raise argparse.ArgumentTypeError("a note needs some text (and no NUL character)")
    return text


def _positive_int(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number of at least 1")
    return int(raw)


def _incident_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    by: str,
    *,
    help: str,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """A command acting on one incident as someone: its id, `--by` and `--config`."""
    parser = commands.add_parser(name, help=help, description=description)
    parser.add_argument("id", type=_incident_id, help="incident id (#12 or 12)")
    parser.add_argument("--by", type=_actor, default=None, help=by)
    _config_option(parser)
    return parser


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="config file (default: $FIREBREAK_CONFIG, ./config.yaml)")


def _load(args: argparse.Namespace) -> tuple[Config, Secrets]:
    from firebreak.config import Secrets, load_config

    return load_config(args.config), Secrets.from_env()


def _serve(args: argparse.Namespace) -> int:
    """Pre-flight before uvicorn: a missing token or an unreachable store is one line here,
    not a traceback out of the ASGI lifespan."""
    from firebreak.server import check_port, serve

    config, secrets = _load(args)
    if missing := secrets.missing_for_slack(config.slack.mode):
        print(
            f"slack.mode is {config.slack.mode}: set {' and '.join(missing)} in the "
            "environment (or use slack.mode: console)",
            file=sys.stderr,
        )
        return 2
    host, port = config.server.host, config.server.port
    try:
        check_port(host, port)
    except OSError as exc:
        print(
            f"cannot listen on {host}:{port}: {os.strerror(exc.errno) if exc.errno else exc} "
            "(is another firebreak or service on it? set server.port)",
            file=sys.stderr,
        )
        return 3
    migrated = _migrate(config.store.url)
    if isinstance(migrated, str):
        print(migrated, file=sys.stderr)
        return 1
    return serve(config, secrets)


def _init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console

    from firebreak.init import DEFAULT_URLS, InitOptions, init_main

    urls = {
        name: getattr(args, f"{name}_url")
        for name in DEFAULT_URLS
        if getattr(args, f"{name}_url", None)
    }
    options = InitOptions(
        path=Path(args.path),
        force=args.force,
        slack_mode=args.slack_mode,
        slack_channel=args.slack_channel,
        public_url=args.public_url,
        store_url=args.store_url,
        urls=urls,
        probe=not args.no_probe,
        page=args.page,
    )
    return init_main(options, Console(highlight=False))


def _demo(args: argparse.Namespace) -> int:
    import asyncio
    import io

    from rich.console import Console

    from firebreak.demo import run_demo
    from firebreak.logs import configure_logging

    configure_logging("ERROR")
    console = Console(file=io.StringIO()) if args.json else Console(highlight=False)
    incident = asyncio.run(run_demo(console))
    if args.json:
        print(incident.model_dump_json(indent=2))
    return 0


def _investigate(args: argparse.Namespace) -> int:
    import asyncio

    from firebreak.investigate import (
        InvestigateError,
        investigate,
        investigate_sample,
        read_payload,
    )
    from firebreak.logs import configure_logging

    config, secrets = _load(args)
    configure_logging("WARNING")
    try:
        if args.sample:
            incident = asyncio.run(investigate_sample(config, secrets))
        else:
            incident = asyncio.run(investigate(config, secrets, read_payload(args.alert)))
    except InvestigateError as exc:
        print(f"firebreak investigate: {exc}", file=sys.stderr)
        return 1
    assert incident.analysis is not None
    print(incident.analysis.model_dump_json(indent=2))
    return 0


def _eval(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from rich.console import Console

    from firebreak.eval import CASES_DIR, EvalError, load_cases, run_cases, stored_cases
    from firebreak.eval_report import print_report, write_json
    from firebreak.logs import configure_logging

    config, secrets = _load(args)
    configure_logging("ERROR")
    console = Console(highlight=False)
    try:
        if args.from_store:
            cases = asyncio.run(stored_cases(config, limit=args.limit))
        else:
            cases = load_cases(Path(args.cases) if args.cases else CASES_DIR)
    except EvalError as exc:
        print(f"firebreak eval: {exc}", file=sys.stderr)
        return 2
    if not cases:
        console.print("No stored incident has feedback yet: nothing to replay.")
        return 0
    with console.status("") as status:

        def progress(number: int, total: int, case: object) -> None:
            status.update(f"case {number}/{total}: {getattr(case, 'name', '')} …")

        report = asyncio.run(run_cases(cases, config, secrets, progress=progress))
    print_report(report, console)
    if args.json:
        write_json(report, Path(args.json))
    return 0


def _slack_manifest(args: argparse.Namespace) -> int:
    from firebreak.bot.slack_manifest import manifest_yaml, unreachable_url

    config, _ = _load(args)
    print(manifest_yaml(config.slack, config.server.public_url), end="")
    problem = unreachable_url(config.slack, config.server.public_url)
    if problem:
        print(f"warning: {problem}", file=sys.stderr)
    return 0


def _check(args: argparse.Namespace) -> int:
    from firebreak.check import check_main

    return check_main(args.config)


def _act(args: argparse.Namespace) -> int:
    import getpass

    from firebreak.actions_cli import act
    from firebreak.logs import configure_logging

    config, secrets = _load(args)
    configure_logging("ERROR")
    by = args.by or getpass.getuser()
    said = act(config, secrets, args.action, args.id, by, getattr(args, "text", ""))
    print(
        f"firebreak {args.action}: {said.line}" if said.code else said.line,
        file=sys.stderr if said.code else sys.stdout,
    )
    return said.code


def _db_upgrade(args: argparse.Namespace) -> int:
    config, _ = _load(args)
    migrated = _migrate(config.store.url)
    if isinstance(migrated, str):
        print(migrated, file=sys.stderr)
        return 1
    print(f"store at {_safe_url(config.store.url)}: {migrated.describe()}")
    return 0


def _incidents(args: argparse.Namespace) -> int:
    from rich.console import Console

    from firebreak.incidents_cli import show_list
    from firebreak.store.schemas import IncidentStatus

    config, _ = _load(args)
    status = IncidentStatus(args.status) if args.status else None
    return show_list(config, status, Console(highlight=False))


def _incident(args: argparse.Namespace) -> int:
    from rich.console import Console

    from firebreak.incidents_cli import show_incident

    config, _ = _load(args)
    return show_incident(config, args.id, Console(highlight=False))


def _open(args: argparse.Namespace) -> int:
    import getpass

    from rich.console import Console

    from firebreak.incidents_cli import show_page_link

    config, secrets = _load(args)
    by = args.by or getpass.getuser()
    return show_page_link(config, secrets, args.id, by, Console(highlight=False))


def _db_purge(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from firebreak.logs import configure_logging
    from firebreak.store.db import create_sync_engine
    from firebreak.store.retention import purge_resolved

    config, _ = _load(args)
    days = args.older_than_days or config.store.retention_days
    if days is None:
        print(
            "firebreak db purge: set store.retention_days or pass --older-than-days N",
            file=sys.stderr,
        )
        return 2
    migrated = _migrate(config.store.url)  # a purge on an old schema would miss tables
    if isinstance(migrated, str):
        print(migrated, file=sys.stderr)
        return 1
    configure_logging("WARNING")
    cutoff = datetime.now(UTC) - timedelta(days=days)
    engine = create_sync_engine(config.store.url)
    try:
        purged = purge_resolved(engine, cutoff, args.batch)
    finally:
        engine.dispose()
    print(
        f"store at {_safe_url(config.store.url)}: purged {purged} incident(s) resolved "
        f"before {cutoff:%Y-%m-%d %H:%M} UTC ({days} days)"
    )
    return 0


def _migrate(url: str) -> Upgrade | str:
    """Apply migrations: what was applied, or the reason in one line when the store cannot
    be reached."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    from firebreak.store.migrate import upgrade

    try:
        return upgrade(url)
    except (OperationalError, DBAPIError, OSError) as exc:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
        return f"store at {_safe_url(url)} cannot be used: {reason[:300]}"


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    raise SystemExit(main())
