"""Structured logging: JSON lines on stderr (coloured key=value on a terminal).

Firebreak's own events (structlog) and the libraries' records (uvicorn, Alembic, APScheduler,
httpx…) go through one formatter, so every line is rendered alike and every line passes the
redactor: a token a library prints in an error message is scrubbed like one in our events.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog

Processor = Callable[[Any, str, MutableMapping[str, Any]], MutableMapping[str, Any]]
QUIET = (
    "httpx",
    "httpcore",
    "aiosqlite",
    "apscheduler.scheduler",
    "apscheduler.executors.default",
    "apscheduler.executors.due",
)


def configure_logging(level: str = "INFO", *, scrub: Processor | None = None) -> None:
    stamped: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = (
        structlog.dev.ConsoleRenderer()
        if sys.stderr.isatty()
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*stamped, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=stamped,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                *([scrub] if scrub is not None else []),
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
