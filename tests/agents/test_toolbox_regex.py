"""`search_logs` on a file source runs the model's regular expression on RE2: a pattern that
backtracks for minutes on `re` answers at once, and the event loop keeps serving meanwhile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from firebreak.agents.toolbox import Toolbox
from firebreak.tools.actions import validate_parameters
from firebreak.tools.config import InvestigationConfig, RemediationAction, RemediationParam
from firebreak.tools.files import FileSource
from firebreak.tools.models import AlertContext
from firebreak.tools.redact import Redactor

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
ALERT = AlertContext(labels={"service": "checkout"}, starts_at=T0)
WINDOW = (T0 - timedelta(minutes=30), T0 + timedelta(minutes=5))


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def files_box(http: httpx.AsyncClient, folder: Path) -> Toolbox:
    source = FileSource(type="file", name="app", path=str(folder / "*.log"))
    return Toolbox(alert=ALERT, window=WINDOW, http=http, redact=Redactor().redact, logs=[source])


async def _longest_stall(work: asyncio.Task[object]) -> float:
    """The longest the event loop went without running a 5 ms ticker while `work` ran."""
    longest = 0.0
    last = time.perf_counter()
    while not work.done():
        await asyncio.sleep(0.005)
        now = time.perf_counter()
        longest = max(longest, now - last)
        last = now
    return longest


async def test_a_backtracking_pattern_answers_at_once_and_the_loop_keeps_serving(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    lines = [f"2026-12-01T09:5{i}:00Z {'a' * 28}!" for i in range(3)]
    lines.append("2026-12-01T09:59:00Z " + "a." * 500_000)  # one 1 MB line
    (tmp_path / "app.log").write_text("\n".join(lines) + "\n")
    tools = files_box(http, tmp_path)
    began = time.perf_counter()
    call = asyncio.create_task(tools.call("search_logs", {"source": "app", "query": r"(a+)+$"}))
    stall = await _longest_stall(call)
    result = call.result()
    # On `re`, (a+)+$ against 28 a's and a `!` backtracks 2^28 times: 12 s for the probe, all
    # of it holding the GIL. Bounds on that pathological input, not on normal speed.
    assert time.perf_counter() - began < 2.0
    assert stall < 0.1, f"the event loop stalled {stall:.2f}s"
    assert result.error is None, result.error
    assert len(result.text) <= 4000


async def test_a_pattern_that_needs_backtracking_is_refused_with_why(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    (tmp_path / "app.log").write_text("2026-12-01T09:50:00Z ERROR x x\n")
    tools = files_box(http, tmp_path)
    result = await tools.call("search_logs", {"source": "app", "query": r"(x) \1"})
    assert result.error is not None
    assert result.error.startswith(r"bad regular expression '(x) \\1'")
    assert "RE2" in result.error and "backreferences" in result.error
    assert result.items == []


async def test_a_1mb_line_is_cut_before_it_is_matched_and_shown(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    (tmp_path / "app.log").write_text("2026-12-01T09:59:00Z ERROR " + "a." * 500_000 + "\n")
    tools = files_box(http, tmp_path)
    result = await tools.call("search_logs", {"source": "app", "query": "ERROR"})
    (item,) = result.items
    assert item.text.endswith("…") and len(item.text) <= 2000


def test_configured_patterns_that_need_backtracking_are_refused_at_start() -> None:
    with pytest.raises(ValidationError, match=r"redact_patterns[\s\S]*RE2"):
        InvestigationConfig(redact_patterns=[r"(?<=token )\w+"])
    with pytest.raises(ValidationError, match=r"pattern[\s\S]*RE2"):
        RemediationParam(name="replicas", pattern=r"(\d)\1")
    assert RemediationParam(name="replicas", pattern=r"^\d{1,2}$").pattern == r"^\d{1,2}$"


def test_a_proposed_parameter_is_matched_on_re2() -> None:
    action = RemediationAction(
        name="scale",
        description="scale",
        kind="command",
        argv=["echo", "{{ n }}"],
        parameters=[RemediationParam(name="n", pattern=r"(a+)+$")],
    )
    began = time.perf_counter()
    with pytest.raises(ValueError, match="does not match"):
        validate_parameters(action, {"n": "a" * 40 + "!"})
    assert time.perf_counter() - began < 1.0  # `re` backtracks 2^40 times on this value
