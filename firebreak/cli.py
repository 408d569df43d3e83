"""The `firebreak` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from firebreak.config import Config, ConfigError, Secrets, load_config


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="firebreak", description=__doc__)
    commands = parser.add_subparsers(title="commands")

    serve = commands.add_parser("serve", help="HTTP server, Slack, scheduler")
    _config_option(serve)
    serve.set_defaults(run=_serve)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(title="db commands", required=True)
    db_upgrade = db_commands.add_parser("upgrade", help="apply schema migrations")
    _config_option(db_upgrade)
    db_upgrade.set_defaults(run=_db_upgrade)
    return parser


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="config file (default: $FIREBREAK_CONFIG, ./config.yaml)")


def _load(args: argparse.Namespace) -> tuple[Config, Secrets]:
    return load_config(args.config), Secrets.from_env()


def _serve(args: argparse.Namespace) -> int:
    from firebreak.server import serve

    config, secrets = _load(args)
    return serve(config, secrets)


def _db_upgrade(args: argparse.Namespace) -> int:
    from firebreak.store.migrate import upgrade

    config, _ = _load(args)
    upgrade(config.store.url)
    print(f"store at {_safe_url(config.store.url)} is up to date")
    return 0


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    raise SystemExit(main())
