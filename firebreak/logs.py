"""Structured logging: JSON lines on stderr (or coloured key=value on a terminal)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import structlog

Processor = Callable[[Any, str, dict[str, Any]], dict[str, Any]]


def configure_logging(level: str = "INFO", *, scrub: Processor | None = None) -> None:
    """`scrub` (the redactor's processor) runs last before rendering, so no secret is printed."""
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    if scrub is not None:
        processors.append(scrub)
    renderer = (
        structlog.dev.ConsoleRenderer()
        if sys.stderr.isatty()
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    for noisy in ("httpx", "httpcore", "apscheduler.executors.default", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
