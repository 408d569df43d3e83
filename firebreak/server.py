"""`firebreak serve`: uvicorn around the app, with a clean shutdown on SIGTERM/SIGINT.

uvicorn stops accepting connections, lets in-flight requests finish (up to
`server.shutdown_timeout_s`), then runs the lifespan shutdown, which drains the ingest
writer before the store closes: an acknowledged alert is always committed.

`kill -USR1 <pid>` prints every thread's stack to stderr (faulthandler): the first thing to
look at when a process seems stuck.
"""

from __future__ import annotations

import faulthandler
import ipaddress
import signal
import socket
import sys

import structlog
import uvicorn

from firebreak.access.config import OPEN as ACCESS_OPEN
from firebreak.app import create_app
from firebreak.components import Parts
from firebreak.config import Config, Secrets
from firebreak.logs import configure_logging
from firebreak.tools.redact import Redactor, redact_processor

log = structlog.get_logger(__name__)


def open_to_the_network(config: Config, secrets: Secrets) -> list[str]:
    """What anyone who can reach `server.host` may do without a token: nothing on loopback
    (the default, 127.0.0.1); else one line per token not set, each saying how to close it."""
    host = config.server.host
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a host name: it may well be reachable
        address = None
    if host == "localhost" or (address is not None and address.is_loopback):
        return []
    where = "every interface" if address is not None and address.is_unspecified else host
    hint = (
        f" (server.host {host} listens on {where}: set the token, or leave server.host at its "
        "default, 127.0.0.1, to listen on this machine only)"
    )
    unguarded = []
    if secrets.webhook_token is None:
        unguarded.append(
            "FIREBREAK_WEBHOOK_TOKEN is not set: anyone who reaches "
            f"{host}:{config.server.port} can post alerts to /webhooks/alertmanager"
        )
    if secrets.api_token is None:
        unguarded.append(
            "FIREBREAK_API_TOKEN is not set: anyone who reaches "
            f"{host}:{config.server.port} can read incidents and acknowledge, escalate and "
            "resolve them through /api/v1"
        )
    return [line + hint for line in unguarded]


def check_port(host: str, port: int) -> None:
    """Bind `server.host:port` once and let go, before anything else starts, so that a port in
    use is one clear line and nothing has begun (no migration, no scheduler, no Slack). Raises
    OSError. (Handing the bound socket to uvicorn instead cut the storm bench's throughput to
    0.37 of uvicorn binding it itself, measured; the probe leaves uvicorn's own path alone.)"""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socket.create_server((host, port), family=family).close()


def serve(config: Config, secrets: Secrets) -> int:
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    redactor = Redactor.from_config(config.investigation, secrets.values())
    configure_logging(scrub=redact_processor(redactor))
    for warning in open_to_the_network(config, secrets):
        log.warning(warning)
    if config.access is None:
        log.warning(ACCESS_OPEN)
    if (gap := config.escalation.paging_gap()) is not None:
        log.warning(gap)
    app = create_app(config, secrets, Parts(redactor=redactor))
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.server.host,
            port=config.server.port,
            lifespan="on",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(config.server.shutdown_timeout_s),
        )
    )
    server.run()
    return 0
