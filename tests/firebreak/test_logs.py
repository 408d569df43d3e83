"""Every log line, ours and the libraries', is rendered as JSON and scrubbed of secrets."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from firebreak.logs import configure_logging
from firebreak.tools.redact import Redactor, redact_processor

TOKEN = "xoxb-1234567890-abcdefghijklmnop"


@pytest.fixture
def logging_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers, root.level = handlers, level
    structlog.reset_defaults()


def test_library_and_own_lines_are_scrubbed(
    logging_restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(scrub=redact_processor(Redactor(secrets=[TOKEN])))
    logging.getLogger("uvicorn.error").warning("client sent Authorization: Bearer %s", TOKEN)
    structlog.get_logger("firebreak.test").info(
        "posting", token=TOKEN, url="postgresql://u:pw@db/x"
    )
    try:
        raise RuntimeError(f"slack refused {TOKEN}")
    except RuntimeError:
        logging.getLogger("slack_bolt").exception("listener failed")

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["logger"] for line in lines] == ["uvicorn.error", "firebreak.test", "slack_bolt"]
    everything = json.dumps(lines)
    assert TOKEN not in everything and ":pw@" not in everything
    assert "[REDACTED]" in lines[0]["event"] and "[REDACTED]" in lines[2]["exception"]
